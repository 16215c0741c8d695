"""A real token service for registries that use Bearer token auth.

Docker Hub, GHCR, Harbor and GitLab answer an unauthenticated request with
``WWW-Authenticate: Bearer realm=...,service=...,scope=...``; the client then
fetches a JWT from the realm and sends it back as ``Authorization: Bearer``.
``TokenServer`` is that realm for a Distribution registry configured with
``auth: token:`` (``token_config`` gives the keys it needs).

It speaks the protocol of Distribution's token auth
(``docs/spec/auth/token.md``): ``GET /token?service=...&scope=...`` with
optional HTTP Basic credentials.  The right credentials get the requested
actions the user may have; no credentials get a token that grants nothing,
as Docker Hub answers for a private repository; wrong ones get 401.

The JWT is what Distribution 2.8 verifies (``registry/auth/token/token.go``):
ES256 over ``header.claims``, the signature as raw ``r || s``, the signing
certificate in the ``x5c`` header, chained to the ``rootcertbundle`` file,
the issuer and audience matching the registry's config, ``nbf`` and ``exp``
within its 60 s leeway.  The certificate is self-signed and written as that
bundle; the key never leaves this process.
"""

from __future__ import annotations

import base64
import datetime
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

logger = logging.getLogger(__name__)

SERVICE = "freshflow-test-registry"
ISSUER = "freshflow-test-token-server"
TOKEN_PATH = "/token"
TOKEN_LIFETIME = 300  # seconds, Docker Hub's
# What an authenticated user may do, by resource type; anonymous may do nothing.
USER_ACTIONS = {"repository": frozenset({"pull", "push"}), "registry": frozenset({"*"})}


@dataclass(frozen=True)
class Access:
    """One ``access`` claim: actions on a named resource."""

    type: str
    name: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, scope: str) -> Access | None:
        """Parse ``type:name:action,action``; None if it is malformed.

        The name sits between the first and last colon: repository names
        never hold one, but the resource type may carry a class, as in
        ``repository(plugin):name:pull``.
        """
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if not kind or not name:
            return None
        return cls(kind, name, tuple(a for a in actions.split(",") if a))

    def claim(self) -> dict[str, object]:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


@dataclass(frozen=True)
class IssuedToken:
    """A token the server gave out, to whom (``""`` is anonymous) and for what.

    ``user_agent`` tells the Docker Engine (``docker/...``) from other clients.
    """

    subject: str
    access: tuple[Access, ...]
    token: str = field(repr=False)
    issued_at: int
    user_agent: str

    def grants(self, repository: str, action: str) -> bool:
        """Whether the token allows ``action`` on ``repository``."""
        return any(
            a.type == "repository" and a.name == repository and action in a.actions
            for a in self.access
        )


class TokenServer:
    """Issue registry tokens on ``127.0.0.1:<port>/token`` to one user.

    ``issued`` and ``refused`` record what it answered, for assertions.
    A test may shorten ``lifetime`` (seconds) or narrow what the user may do
    to a repository (``repository_actions``) while it runs.
    """

    def __init__(
        self,
        directory: Path,
        username: str,
        password: str,
        *,
        service: str = SERVICE,
        issuer: str = ISSUER,
    ) -> None:
        self.username = username
        self.service = service
        self.issuer = issuer
        self.lifetime = TOKEN_LIFETIME
        self.repository_actions = USER_ACTIONS["repository"]
        self.root_certificate = directory / "token-signer.crt"
        self._password = password
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._certificate = _self_signed(self._key)
        self._issued: list[IssuedToken] = []
        self._refused = 0
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

        directory.mkdir(parents=True, exist_ok=True)
        pem = self._certificate.public_bytes(serialization.Encoding.PEM)
        self.root_certificate.write_bytes(pem)

    @property
    def realm(self) -> str:
        """The URL registries send clients to for a token."""
        if self._server is None:
            msg = "the token server is not started"
            raise RuntimeError(msg)
        return f"http://127.0.0.1:{self._server.server_port}{TOKEN_PATH}"

    def token_config(self) -> dict[str, str]:
        """The ``auth: token:`` section of a Distribution config for this server."""
        return {
            "realm": self.realm,
            "service": self.service,
            "issuer": self.issuer,
            "rootcertbundle": str(self.root_certificate),
        }

    @property
    def issued(self) -> list[IssuedToken]:
        """Every token issued so far, oldest first."""
        with self._lock:
            return list(self._issued)

    @property
    def tokens_issued(self) -> int:
        """How many tokens the server issued."""
        with self._lock:
            return len(self._issued)

    @property
    def refused(self) -> int:
        """How many requests the server refused for wrong credentials."""
        with self._lock:
            return self._refused

    def start(self) -> TokenServer:
        """Listen on a free loopback port and serve in a background thread."""
        if self._server is not None:
            return self
        self._server = _Server(("127.0.0.1", 0), _TokenHandler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="token-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def authenticate(self, authorization: str | None) -> str | None:
        """Return the subject for an ``Authorization`` header.

        ``""`` is an anonymous request, None wrong or unreadable credentials.
        """
        if not authorization:
            return ""
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            pair = base64.b64decode(encoded, validate=True).decode()
        except ValueError:
            return None
        username, _, password = pair.partition(":")
        right_user = hmac.compare_digest(username.encode(), self.username.encode())
        right_password = hmac.compare_digest(password.encode(), self._password.encode())
        return username if right_user and right_password else None

    def refuse(self) -> None:
        """Count one request refused for its credentials."""
        with self._lock:
            self._refused += 1

    def issue(self, subject: str, scopes: list[str], user_agent: str) -> IssuedToken:
        """Sign a token for ``subject`` granting what it may do of ``scopes``."""
        allowed = {**USER_ACTIONS, "repository": self.repository_actions}
        granted = tuple(_grant(subject, scope, allowed) for scope in scopes)
        access = tuple(a for a in granted if a is not None and a.actions)
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + self.lifetime,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": [a.claim() for a in access],
        }
        issued = IssuedToken(subject, access, self._sign(claims), now, user_agent)
        with self._lock:
            self._issued.append(issued)
        logger.debug("token issued to %r for %s", subject, access)
        return issued

    def _sign(self, claims: dict[str, object]) -> str:
        der = self._certificate.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        signing_input = f"{_b64url_json(header)}.{_b64url_json(claims)}"
        r, s = decode_dss_signature(
            self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        # JWS wants the two P-256 integers side by side, not DER.
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input}.{_b64url(signature)}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        tokens: TokenServer,
    ) -> None:
        super().__init__(address, handler)
        self.tokens = tokens


class _TokenHandler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != TOKEN_PATH:
            self._reply(HTTPStatus.NOT_FOUND, {"details": "not found"})
            return
        tokens = self.server.tokens
        query = parse_qs(url.query)
        service = query.get("service", [tokens.service])[0]
        if service != tokens.service:
            details = f"unknown service {service!r}"
            self._reply(HTTPStatus.BAD_REQUEST, {"details": details})
            return

        subject = tokens.authenticate(self.headers.get("Authorization"))
        if subject is None:
            tokens.refuse()
            self._reply(
                HTTPStatus.UNAUTHORIZED,
                {"details": "incorrect username or password"},
                {"WWW-Authenticate": f'Basic realm="{tokens.issuer}"'},
            )
            return

        # Clients send one scope per parameter or several split by spaces.
        scopes = [s for value in query.get("scope", []) for s in value.split()]
        issued = tokens.issue(subject, scopes, self.headers.get("User-Agent", ""))
        at = datetime.datetime.fromtimestamp(issued.issued_at, datetime.UTC)
        self._reply(
            HTTPStatus.OK,
            {
                "token": issued.token,
                "access_token": issued.token,
                "expires_in": tokens.lifetime,
                "issued_at": at.isoformat().replace("+00:00", "Z"),
            },
        )

    def _reply(
        self,
        status: HTTPStatus,
        document: dict[str, object],
        headers: dict[str, str] | None = None,
    ) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # The request line holds no secret (credentials travel in a header),
        # but the default handler writes to stderr, which pytest shows.
        logger.debug("token server: %s", format % args)


def _grant(
    subject: str, scope: str, actions: Mapping[str, frozenset[str]]
) -> Access | None:
    access = Access.parse(scope)
    if access is None or not subject:
        return None
    allowed = actions.get(access.type.split("(")[0], frozenset())
    return Access(
        access.type, access.name, tuple(a for a in access.actions if a in allowed)
    )


def _self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "freshflow token signer")]
    )
    now = datetime.datetime.now(datetime.UTC)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_json(document: Mapping[str, object]) -> str:
    return _b64url(json.dumps(document, separators=(",", ":")).encode())
