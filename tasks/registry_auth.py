"""Answering a registry's authentication challenges, Basic or Bearer token.

A registry that wants credentials answers 401 with a `WWW-Authenticate`
challenge.  Basic is answered with the integration's username and password;
Bearer sends the client to a token service (the challenge's `realm`), which
trades those credentials for a token for the scopes a request needs.
"""

from __future__ import annotations

import base64
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

from flows import redaction
from tasks.engine import RegistryAuth
from tasks.registry_transport import http_client

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_TOKEN_LIFETIME = 60.0  # seconds, when the token service does not say
_TOKEN_MARGIN = 30.0  # renew a token this long before it expires


class TokenError(Exception):
    """The registry's token service could not give a token; says why."""


@dataclass(frozen=True)
class _Grant:
    """How to authenticate for one scope, and until when."""

    header: str = field(repr=False)  # holds the password or the token
    challenge: Mapping[str, str] | None = None  # a Bearer grant's, to renew it
    renew_at: float | None = None  # monotonic time


class Authorizer:
    """Answers the registry's 401 challenges; one grant per repository scope.

    Bearer tokens are renewed shortly before they expire, so a long push
    never starts a layer upload, which cannot be sent twice, with a stale
    token.  A token service on another host than the registry is reached
    with ordinary certificate checks, whatever the registry's own rules.
    """

    def __init__(
        self,
        auth: RegistryAuth | None,
        host: str,
        realm_tls: Callable[[str], ssl.SSLContext],
    ) -> None:
        self.auth = auth
        self._host = host
        self._realm_tls = realm_tls
        self._grants: dict[str, _Grant] = {}
        self._realms: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()

    def header(self, client: httpx.Client, scope: str) -> str | None:
        """The Authorization header to send for `scope`, renewed when due."""
        with self._lock:
            grant = self._grants.get(scope)
        if grant is None:
            return None
        due = grant.renew_at is not None and time.monotonic() >= grant.renew_at
        if due and grant.challenge is not None:
            grant = self._bearer(client, grant.challenge, scope)
            with self._lock:
                self._grants[scope] = grant
        return grant.header

    def answer(
        self, client: httpx.Client, challenge: str, scope: str, refused: str | None
    ) -> bool:
        """Learn how to authenticate for `scope` after a 401 refused `refused`.

        False when there is no other answer to try.
        """
        kind, _, params = challenge.partition(" ")
        values = dict(_CHALLENGE_PARAM.findall(params))
        if kind.lower() == "basic":
            if self.auth is None:
                return False
            pair = f"{self.auth.username}:{self.auth.password}".encode()
            grant = _Grant("Basic " + base64.b64encode(pair).decode())
        elif kind.lower() == "bearer" and values.get("realm"):
            grant = self._bearer(client, values, scope)
        else:
            return False
        if grant.header == refused:
            return False
        with self._lock:
            self._grants[scope] = grant
        return True

    def close(self) -> None:
        for client in self._realms.values():
            client.close()

    def _bearer(
        self, client: httpx.Client, challenge: Mapping[str, str], scope: str
    ) -> _Grant:
        realm = challenge["realm"]
        params = httpx.QueryParams([("scope", one) for one in scope.split()])
        if challenge.get("service"):
            params = params.add("service", challenge["service"])
        basic = (
            httpx.BasicAuth(self.auth.username, self.auth.password)
            if self.auth
            else None
        )
        asked = time.monotonic()
        try:
            response = self._realm_client(client, realm).get(
                realm, params=params, auth=basic
            )
        except httpx.HTTPError as exc:
            msg = f"cannot reach the registry's token service {realm!r}: {exc or type(exc).__name__}"
            raise TokenError(msg) from None
        if response.status_code in (401, 403):
            msg = f"the token service {realm!r} refused the credentials: unauthorized"
            raise TokenError(msg)
        if response.status_code != 200:
            msg = f"the token service {realm!r} answered HTTP {response.status_code}"
            raise TokenError(msg)
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
            lifetime = float(body.get("expires_in") or _TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            token, lifetime = None, 0.0
        if not token:
            msg = f"the token service {realm!r} returned no token"
            raise TokenError(msg)
        redaction.register(str(token))
        renew_at = asked + max(lifetime - _TOKEN_MARGIN, lifetime / 2)
        return _Grant("Bearer " + str(token), dict(challenge), renew_at)

    def _realm_client(self, client: httpx.Client, realm: str) -> httpx.Client:
        """The registry's own client for a realm on its host, else one of the realm's."""
        host = httpx.URL(realm).netloc.decode()
        if host == self._host:
            return client
        with self._lock:
            if host not in self._realms:
                self._realms[host] = http_client(self._realm_tls(host))
            return self._realms[host]
