"""A registry's HTTP API (Docker Registry V2 / OCI distribution), for pushing.

`RegistryClient` talks to one registry host the way the Docker Engine next
to freshflow would: with the engine's TLS rules (`tasks.registry_transport`),
answering Basic or Bearer token challenges (`tasks.registry_auth`), and with
Docker Hub's `docker.io` served by `registry-1.docker.io`.

Blob uploads stream one compressed layer per PATCH, as `docker push` does;
registries such as ECR do not take several chunks.  An upload stops at the
deadline by ending its body early: the registry answers the short PATCH
with the session's true state, and only with that state does it accept the
DELETE that drops what it received (Distribution refuses a cancel whose
state lags behind the bytes it holds).  Upload sockets keep little unsent
data queued (TCP_NOTSENT_LOWAT), so ending a body costs at most the bytes
already on the wire.  A connection that does not end within a grace period
after the deadline is reset by a watchdog; the registry then keeps the
partial upload until its own upload purge, and a warning says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from flows.errors import PushError, RegistryUnavailableError, StepError
from tasks.engine import Deadline, RegistryAuth, push_error
from tasks.registry_auth import Authorizer, TokenError
from tasks.registry_transport import (
    CONNECT_TIMEOUT,
    EngineRegistryRules,
    SocketTrap,
    http_client,
)

log = logging.getLogger(__name__)

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST_V2 = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_MANIFESTS = (MANIFEST_V2, OCI_MANIFEST)
MANIFEST_INDEXES = (MANIFEST_LIST_V2, OCI_INDEX)
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
_CUT_GRACE = 5.0  # after the deadline, how long an ending upload may take
SEND_SIZE = 1 << 14  # small pieces: a stop is noticed after at most one


@dataclass(frozen=True)
class Upload:
    """An upload session the registry opened; `url` is where to send bytes."""

    url: str


class UploadStopped(Exception):
    """An upload was stopped early, at the deadline or on abort, and cancelled."""


class RegistryClient:
    """The HTTP API of one registry host, for one push."""

    def __init__(
        self,
        base_url: str,
        tls: ssl.SSLContext | bool,
        auth: RegistryAuth | None,
        host: str,
        actions: str = "pull,push",
        realm_tls: Callable[[str], ssl.SSLContext] = lambda _host: (
            ssl.create_default_context()
        ),
    ) -> None:
        self.base_url = base_url
        self.host = host
        self._tls = tls
        self._actions = actions
        self._authorizer = Authorizer(
            auth, httpx.URL(base_url).netloc.decode(), realm_tls
        )
        self._client = self._new_client()

    @classmethod
    def connect(
        cls,
        host: str,
        auth: RegistryAuth | None,
        rules: EngineRegistryRules,
        reference: str,
        actions: str = "pull,push",
    ) -> RegistryClient:
        """Find how `host` answers (HTTPS, or HTTP for insecure registries).

        `actions` is what tokens are asked for: `pull` for a source.
        """
        api_host = "registry-1.docker.io" if host in DOCKER_HUB else host
        insecure = rules.insecure(host)
        candidates: list[tuple[str, ssl.SSLContext | bool]] = [
            (f"https://{api_host}", rules.tls(host, verify=not insecure))
        ]
        if insecure:
            candidates.append((f"http://{api_host}", False))
        failure = ""
        for base_url, tls in candidates:
            client = cls(
                base_url,
                tls,
                auth,
                host,
                actions,
                lambda realm: rules.tls(realm, verify=True),
            )
            try:
                client._client.get(f"{base_url}/v2/", timeout=CONNECT_TIMEOUT)
            except httpx.HTTPError as exc:
                failure = str(exc) or type(exc).__name__
                client.close()
                continue
            return client
        raise push_error(reference, failure)

    def new_client(self, trap: SocketTrap | None = None) -> httpx.Client:
        """A client of its own (for one blob), its sockets seen by `trap`."""
        return self._new_client(trap)

    def _new_client(self, trap: SocketTrap | None = None) -> httpx.Client:
        return http_client(self._tls, trap)

    def close(self) -> None:
        """Close the connections."""
        self._client.close()
        self._authorizer.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        url: str,
        repository: str,
        *,
        client: httpx.Client | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | Iterator[bytes] | None = None,
        also: str | None = None,
    ) -> httpx.Response:
        """Send a request; a 401 is answered once, and the request sent again.

        A streamed body cannot be sent again, so its 401 is returned as it is.
        `also` is a further token scope the request needs.
        """
        client = client or self._client
        scope = f"repository:{repository}:{self._actions}"
        if also:
            scope += " " + also
        if not url.startswith(("http://", "https://")):
            url = self.base_url + url
        for attempt in range(2):
            sent = dict(headers or {})
            header = self._authorizer.header(self._client, scope)
            if header:
                sent["Authorization"] = header
            response = client.request(method, url, headers=sent, content=content)
            challenge = response.headers.get("WWW-Authenticate", "")
            if (
                attempt
                or response.status_code != 401
                or not challenge
                or not isinstance(content, (bytes, type(None)))
                or not self._authorizer.answer(self._client, challenge, scope, header)
            ):
                break
        return response

    # -- blobs ---------------------------------------------------------------

    def has_blob(self, repository: str, digest: str, reference: str) -> bool:
        """Whether the repository holds the blob."""
        response = self._call(
            "HEAD", f"/v2/{repository}/blobs/{digest}", repository, reference
        )
        if response.status_code == 404:
            return False
        _check(response, (200,), reference, "checking a layer")
        return True

    def start_upload(
        self, repository: str, reference: str, client: httpx.Client | None = None
    ) -> Upload:
        """Open an upload session."""
        response = self._call(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            repository,
            reference,
            client=client,
            headers={"Content-Length": "0"},
            content=b"",
        )
        _check(response, (202,), reference, "starting an upload")
        return Upload(self._location(response, reference))

    def put_blob(
        self, repository: str, data: bytes, digest: str, reference: str
    ) -> None:
        """Upload a small blob in one request."""
        upload = self.start_upload(repository, reference)
        try:
            url = str(httpx.URL(upload.url).copy_merge_params({"digest": digest}))
            response = self._call(
                "PUT",
                url,
                repository,
                reference,
                headers={"Content-Type": "application/octet-stream"},
                content=data,
            )
            _check(response, (201,), reference, "uploading the image config")
        except BaseException:
            self.cancel(upload, repository)
            raise

    def stream_blob(
        self,
        repository: str,
        body: Iterator[bytes],
        finish: Callable[[], str | None],
        deadline: Deadline,
        reference: str,
    ) -> None:
        """Upload `body` in one PATCH, then commit it under the digest `finish` returns.

        `finish` returns None when `body` was ended early: the session is
        then deleted and UploadStopped raised.  A body that raises resets
        the connection.
        """
        trap = SocketTrap()
        client = self._new_client(trap)
        upload = self.start_upload(repository, reference, client)
        try:
            with deadline.watchdog(trap.cut, _CUT_GRACE):
                response = self._call(
                    "PATCH",
                    upload.url,
                    repository,
                    reference,
                    client=client,
                    headers={"Content-Type": "application/octet-stream"},
                    content=_resetting(body, trap),
                )
                _check(response, (202,), reference, "uploading a layer")
                upload = Upload(self._location(response, reference))
                digest = finish()
                if digest is None:
                    raise UploadStopped
                url = httpx.URL(upload.url)
                commit = str(url.copy_merge_params({"digest": digest}))
                response = self._call(
                    "PUT",
                    commit,
                    repository,
                    reference,
                    client=client,
                    headers={"Content-Length": "0"},
                    content=b"",
                )
                _check(response, (201,), reference, "committing a layer")
        except BaseException:
            self.cancel(upload, repository)  # the watchdog is off by now
            raise
        finally:
            client.close()

    def copy_blob(
        self,
        source: RegistryClient,
        source_repository: str,
        repository: str,
        digest: str,
        should_stop: Callable[[], bool],
        deadline: Deadline,
        reference: str,
        on_progress: Callable[[int], None],
    ) -> None:
        """Stream a blob from `source` into this registry, checking its digest.

        Stops as `stream_blob` does when `should_stop` turns true.
        """
        trap = SocketTrap()
        reader = source.new_client(trap)
        hasher = hashlib.sha256()
        stopped = False

        def body(response: httpx.Response) -> Iterator[bytes]:
            nonlocal stopped
            done = 0
            try:
                for chunk in response.iter_raw(SEND_SIZE):
                    if should_stop():
                        stopped = True
                        return
                    hasher.update(chunk)
                    done += len(chunk)
                    on_progress(done)
                    yield chunk
            except httpx.HTTPError as exc:
                raise _unavailable(
                    reference,
                    f"reading layer {digest[:19]} from {source.host}: connection failed: {exc or type(exc).__name__}",
                ) from None

        def finish() -> str | None:
            if stopped:
                return None
            if "sha256:" + hasher.hexdigest() != digest:
                msg = f"push of {reference}: layer {digest[:19]} read from {source.host} has other content than its digest says"
                raise PushError(msg)
            return digest

        try:
            with (
                deadline.watchdog(trap.cut, _CUT_GRACE),
                source.open_blob(
                    source_repository, digest, reader, reference
                ) as response,
            ):
                self.stream_blob(
                    repository, body(response), finish, deadline, reference
                )
        finally:
            reader.close()

    def cancel(self, upload: Upload, repository: str) -> bool:
        """Delete an upload session; the registry drops what it received.

        False, with a warning, when the registry keeps the session: it then
        holds the partial upload until its own upload purge.
        """
        where = _no_query(upload.url)
        try:
            response = self.request("DELETE", upload.url, repository)
        except (httpx.HTTPError, TokenError) as exc:
            log.warning(
                "could not cancel the upload %s (%s); the registry keeps it until its upload purge",
                where,
                exc,
            )
            return False
        if response.status_code in (202, 204) or _error_codes(response) == [
            "BLOB_UPLOAD_UNKNOWN"
        ]:
            return True
        log.warning(
            "the registry kept the cancelled upload %s (%s) until its upload purge",
            where,
            _describe(response),
        )
        return False

    def mount_blob(
        self, repository: str, digest: str, source: str, reference: str
    ) -> bool:
        """Mount a blob from another repository of this registry.

        False when the registry will not (no such blob there, no access to
        `source`, no mounting at all): the blob is then uploaded instead.
        """
        url = httpx.URL(f"/v2/{repository}/blobs/uploads/")
        try:
            response = self._call(
                "POST",
                str(url.copy_merge_params({"mount": digest, "from": source})),
                repository,
                reference,
                headers={"Content-Length": "0"},
                content=b"",
                also=f"repository:{source}:pull",
            )
        except StepError as exc:
            log.debug("cannot mount %s from %s: %s", digest[:19], source, exc)
            return False
        if response.status_code == 201:
            return True
        if response.status_code == 202:  # an upload session instead: drop it
            self.cancel(Upload(self._location(response, reference)), repository)
        return False

    @contextlib.contextmanager
    def open_blob(
        self, repository: str, digest: str, client: httpx.Client, reference: str
    ) -> Iterator[httpx.Response]:
        """A streamed GET of a blob, authenticated, redirects followed."""
        scope = f"repository:{repository}:{self._actions}"
        url = f"{self.base_url}/v2/{repository}/blobs/{digest}"
        for attempt in range(2):
            try:
                header = self._authorizer.header(self._client, scope)
                request = client.build_request(
                    "GET", url, headers={"Authorization": header} if header else None
                )
                response = client.send(request, stream=True)
                challenge = response.headers.get("WWW-Authenticate", "")
                if (
                    attempt == 0
                    and response.status_code == 401
                    and challenge
                    and self._authorizer.answer(self._client, challenge, scope, header)
                ):
                    response.close()
                    continue
            except httpx.HTTPError as exc:
                raise _unavailable(
                    reference, f"connection failed: {exc or type(exc).__name__}"
                ) from None
            except TokenError as exc:
                raise push_error(reference, str(exc)) from None
            break
        if response.status_code == 401:
            response.read()
            response.close()
            raise push_error(reference, self._refusal(response, repository))
        try:
            if response.status_code != 200:
                response.read()
                _check(response, (200,), reference, f"reading layer {digest[:19]}")
            yield response
        finally:
            response.close()

    # -- manifests -----------------------------------------------------------

    def get_manifest(
        self, repository: str, reference_or_digest: str, reference: str
    ) -> tuple[bytes, str]:
        """The manifest's exact bytes and media type."""
        response = self._call(
            "GET",
            f"/v2/{repository}/manifests/{reference_or_digest}",
            repository,
            reference,
            headers={"Accept": ", ".join(IMAGE_MANIFESTS + MANIFEST_INDEXES)},
        )
        _check(response, (200,), reference, "reading the source manifest")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in IMAGE_MANIFESTS + MANIFEST_INDEXES:
            try:
                media_type = str(json.loads(response.content).get("mediaType", ""))
            except (ValueError, AttributeError):
                media_type = ""
        return response.content, media_type

    def put_manifest(
        self,
        repository: str,
        tag: str,
        manifest: bytes,
        reference: str,
        media_type: str = MANIFEST_V2,
    ) -> str:
        """Store the manifest under `tag`; return its digest."""
        response = self._call(
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            repository,
            reference,
            headers={"Content-Type": media_type},
            content=manifest,
        )
        _check(response, (201, 200), reference, "storing the manifest")
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        served = response.headers.get("Docker-Content-Digest")
        if served and served != digest:
            msg = f"push of {reference}: the registry stored the manifest as {served}, expected {digest}"
            raise PushError(msg)
        return digest

    # -- plumbing ------------------------------------------------------------

    def _call(
        self,
        method: str,
        url: str,
        repository: str,
        reference: str,
        **kwargs: Any,
    ) -> httpx.Response:
        try:
            response = self.request(method, url, repository, **kwargs)
        except UploadStopped:
            raise
        except TokenError as exc:
            raise push_error(reference, str(exc)) from None
        except httpx.TimeoutException as exc:
            raise _unavailable(
                reference, f"timeout talking to the registry ({type(exc).__name__})"
            ) from None
        except httpx.HTTPError as exc:
            raise _unavailable(
                reference, f"connection failed: {exc or type(exc).__name__}"
            ) from None
        if response.status_code == 401:
            raise push_error(reference, self._refusal(response, repository))
        return response

    def _refusal(self, response: httpx.Response, repository: str) -> str:
        """What a final 401 means: no credentials, wrong ones, or too little access."""
        challenge = response.headers.get("WWW-Authenticate", "")
        if 'error="insufficient_scope"' not in challenge:
            return _describe(response)
        wanted = f"{self._actions} access to {repository!r}"
        if self._authorizer.auth is None:
            return f"unauthorized: the registry grants anonymous users no {wanted}; give the integration credentials"
        return f"access denied: the registry grants these credentials no {wanted} (insufficient_scope)"

    def _location(self, response: httpx.Response, reference: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise push_error(reference, "the registry gave no upload location")
        return str(response.url.join(location))


def _resetting(body: Iterator[bytes], trap: SocketTrap) -> Iterator[bytes]:
    """`body`, resetting the connection when it stops early."""
    try:
        yield from body
    except UploadStopped:
        trap.reset()  # the client closes the connection as the error passes
        raise


def _check(
    response: httpx.Response, expected: tuple[int, ...], reference: str, doing: str
) -> None:
    if response.status_code in expected:
        return
    message = f"{doing}: {_describe(response)}"
    if response.status_code >= 500 or response.status_code == 429:
        raise _unavailable(reference, message)
    raise push_error(reference, message)


def _unavailable(reference: str, message: str) -> RegistryUnavailableError:
    """A failure worth another try: no connection, a timeout, a 5xx or 429."""
    error = push_error(reference, message)
    if isinstance(error, RegistryUnavailableError):
        return error
    return RegistryUnavailableError(str(error))


def _errors(response: httpx.Response) -> list[dict[str, Any]]:
    try:
        errors = json.loads(response.content or b"{}").get("errors") or []
    except (ValueError, AttributeError):
        return []
    return [e for e in errors if isinstance(e, dict)]


def _error_codes(response: httpx.Response) -> list[str]:
    return [str(e.get("code", "")) for e in _errors(response)]


def _describe(response: httpx.Response) -> str:
    status = response.status_code
    errors = _errors(response)
    words = "; ".join(
        f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors
    )
    if status == 401:
        return f"unauthorized: authentication required ({words or 'HTTP 401'})"
    if status == 403:
        return f"denied: requested access to the resource is denied ({words or 'HTTP 403'})"
    return f"HTTP {status}" + (f" ({words})" if words else "")


def _no_query(url: str) -> str:
    return url.split("?", 1)[0]
