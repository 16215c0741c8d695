"""The Docker Engine: build, pull, tag and push through the docker SDK.

The engine answers a push or pull with HTTP 200 and then reports progress and
failure as a stream of JSON events; a failure is the first event with an
`error` key.  Every stream here is read against a deadline: a watchdog shuts
the engine connection down when the deadline passes, which unblocks the read
and makes the engine cancel the work (the request context ends).  Credentials
go to the engine per call in the `X-Registry-Auth` header and are never
written to `~/.docker/config.json`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import docker
import docker.auth
import docker.errors
import docker.utils
import requests
import urllib3.exceptions

from flows.errors import (
    BuildError,
    EngineError,
    ImageNotFoundError,
    PushError,
    RegistryAuthError,
    RegistryUnavailableError,
    StepError,
    StepTimeoutError,
)

log = logging.getLogger(__name__)

Event = Mapping[str, Any]
ProgressCallback = Callable[[Event], None]

_AUTH_WORDS = ("unauthorized", "authentication required", "no basic auth credentials")
_UNREACHABLE_WORDS = (
    "connection refused",
    "no such host",
    "name or service not known",
    "temporary failure in name resolution",
    "timeout",
)
_ENGINE_TIMEOUT = 60
_EXPORT_CHUNK = 1 << 20


@dataclass(frozen=True)
class RegistryAuth:
    """Credentials for one registry host, handed to the engine per call."""

    registry: str
    username: str
    password: str

    def __repr__(self) -> str:
        return f"RegistryAuth(registry={self.registry!r}, username={self.username!r}, password='[secure]')"

    def header(self) -> str:
        config = {
            "username": self.username,
            "password": self.password,
            "serveraddress": self.registry,
        }
        header: bytes = docker.auth.encode_header(config)
        return header.decode()


class Deadline:
    """A point in time after which the bounded work must stop."""

    def __init__(self, seconds: float | None, what: str = "the step") -> None:
        self.seconds = seconds
        self.what = what
        self._end = time.monotonic() + seconds if seconds else None

    def remaining(self) -> float | None:
        return None if self._end is None else self._end - time.monotonic()

    def expired(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0

    def error(self, stopped: str = "the work was stopped") -> StepTimeoutError:
        return StepTimeoutError(
            f"{self.what} timed out after {_duration(self.seconds or 0)}; {stopped}"
        )

    @contextlib.contextmanager
    def watchdog(
        self, action: Callable[[], None], grace: float = 0.0
    ) -> Iterator[None]:
        """Run `action` `grace` seconds after the deadline, unless the block ends first."""
        left = self.remaining()
        timer = None
        if left is not None:
            timer = threading.Timer(max(left, 0) + grace, action)
            timer.daemon = True
            timer.start()
        try:
            yield
        finally:
            if timer is not None:
                timer.cancel()


def _duration(seconds: float) -> str:
    return f"{seconds:g}s" if seconds < 120 else f"{seconds / 60:g}m"


def connect() -> docker.APIClient:
    """A low-level client for the engine named by DOCKER_HOST (or the socket)."""
    try:
        kwargs = docker.utils.kwargs_from_env()
        api = docker.APIClient(version="auto", timeout=_ENGINE_TIMEOUT, **kwargs)
        api.ping()
    except (docker.errors.DockerException, requests.RequestException) as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        msg = (
            f"cannot reach the Docker Engine at {where}: {exc}; "
            "start it (scripts/start-docker) or set DOCKER_HOST"
        )
        raise EngineError(msg) from None
    return api


def _response_socket(response: requests.Response) -> socket.socket | None:
    # docker-py keeps the engine connection inside the urllib3 response;
    # this is the same path its own attach code follows.
    raw = response.raw._fp.fp.raw
    sock = getattr(raw, "_sock", raw)
    return sock if isinstance(sock, socket.socket) else None


def stream_events(
    api: docker.APIClient, response: requests.Response, deadline: Deadline
) -> Iterator[Event]:
    """Decoded JSON events of an engine stream, cut off at `deadline`."""
    api._raise_for_status(response)
    sock = _response_socket(response)
    try:
        if sock is not None:
            sock.settimeout(None)  # the deadline, not a read timeout, bounds it
        with deadline.watchdog(lambda: _cut(sock)):
            yield from api._stream_helper(response, decode=True)
    except (
        OSError,
        requests.RequestException,
        urllib3.exceptions.HTTPError,
        ValueError,
    ) as exc:
        if deadline.expired():
            raise deadline.error() from None
        msg = f"the Docker Engine connection broke: {exc}"
        raise EngineError(msg) from None
    finally:
        response.close()
    if deadline.expired():
        raise deadline.error()


def _write(into: IO[bytes], chunk: bytes, image: str) -> None:
    try:
        into.write(chunk)
    except OSError as exc:
        msg = f"cannot write the export of image {image[:19]}: {exc.strerror or exc}"
        raise ExportWriteError(msg) from None


def _cut(sock: socket.socket | None) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _error_message(event: Event) -> str | None:
    if "error" in event or "errorDetail" in event:
        detail = event.get("errorDetail") or {}
        return str(detail.get("message") or event.get("error") or "unknown error")
    return None


@dataclass(frozen=True)
class PushResult:
    """What the engine reported for one pushed tag."""

    reference: str
    digest: str
    size: int | None


def push_image(
    api: docker.APIClient,
    repository: str,
    tag: str,
    auth: RegistryAuth | None,
    deadline: Deadline,
    on_event: ProgressCallback | None = None,
) -> PushResult:
    """Push `repository:tag` (already tagged locally); fail on the first error."""
    reference = f"{repository}:{tag}"
    headers = {"X-Registry-Auth": auth.header()} if auth else {}
    url = api._url("/images/{0}/push", repository)
    try:
        response = api._post_json(
            url, None, headers=headers, params={"tag": tag}, stream=True
        )
    except requests.RequestException as exc:
        msg = f"cannot start the push of {reference}: {exc}"
        raise EngineError(msg) from None
    digest, size = None, None
    try:
        for event in stream_events(api, response, deadline):
            message = _error_message(event)
            if message is not None:
                raise push_error(reference, message)
            aux = event.get("aux") or {}
            if aux.get("Digest"):
                digest, size = str(aux["Digest"]), aux.get("Size")
            log.debug("push %s: %s", reference, _brief(event))
            if on_event is not None:
                on_event(event)
    except docker.errors.APIError as exc:
        raise push_error(reference, str(exc.explanation or exc)) from None
    if digest is None:
        msg = f"push of {reference} ended without a digest from the registry; the tag may not exist there"
        raise PushError(msg)
    return PushResult(reference, digest, size)


def push_error(reference: str, message: str) -> StepError:
    """The error for a failed push of `reference`, by what the registry said."""
    repository, _, tag = reference.rpartition(":")
    registry, _, path = repository.partition("/")
    where = f"registry {registry!r}, repository {path!r}, tag {tag!r}"
    lowered = message.lower()
    if any(word in lowered for word in _AUTH_WORDS):
        return RegistryAuthError(
            f"push to {where} failed: unauthorized ({message}); "
            "check the integration's username and password"
        )
    if "denied" in lowered:
        return RegistryAuthError(
            f"push to {where} failed: access denied ({message}); "
            "the credentials are valid but may not push to this repository"
        )
    if any(word in lowered for word in _UNREACHABLE_WORDS):
        return RegistryUnavailableError(
            f"push to {where} failed: the registry cannot be reached ({message}); check that it is up"
        )
    if "does not exist" in lowered and "tag" in lowered:
        return ImageNotFoundError(f"push of {reference} failed: {message}")
    return PushError(f"push to {where} failed: {message}")


def _brief(event: Event) -> str:
    parts = [str(event.get(k)) for k in ("id", "status", "progress") if event.get(k)]
    return " ".join(parts) or str(dict(event))


def pull_image(
    api: docker.APIClient, reference: str, auth: RegistryAuth | None, deadline: Deadline
) -> str:
    """Pull `reference`; return the local image ID."""
    name, _, tag = (
        reference.rpartition(":")
        if ":" in reference.rsplit("/", 1)[-1]
        else (reference, "", "latest")
    )
    headers = {"X-Registry-Auth": auth.header()} if auth else {}
    params = {"fromImage": name, "tag": tag}
    try:
        response = api._post(
            api._url("/images/create"),
            params=params,
            headers=headers,
            stream=True,
            timeout=None,
        )
        for event in stream_events(api, response, deadline):
            message = _error_message(event)
            if message is not None:
                msg = f"image {reference!r} is not present locally and pulling it failed: {message}"
                raise ImageNotFoundError(msg)
    except docker.errors.APIError as exc:
        msg = f"image {reference!r} is not present locally and pulling it failed: {exc.explanation or exc}"
        raise ImageNotFoundError(msg) from None
    return image_id(api, reference) or _missing(reference)


def _missing(reference: str) -> str:
    msg = f"image {reference!r} does not exist in the engine after pulling it"
    raise ImageNotFoundError(msg)


def image_id(api: docker.APIClient, reference: str) -> str | None:
    """The ID of a local image, or None when the engine does not have it."""
    try:
        return str(api.inspect_image(reference)["Id"])
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        if exc.status_code in (400, 404):
            return None
        msg = f"cannot inspect image {reference!r}: {exc.explanation}"
        raise EngineError(msg) from None


def tag_image(api: docker.APIClient, image: str, repository: str, tag: str) -> None:
    """Give local image `image` the name `repository:tag`."""
    try:
        api.tag(image, repository, tag, force=True)
    except docker.errors.APIError as exc:
        msg = f"cannot tag {image!r} as {repository}:{tag}: {exc.explanation}"
        raise EngineError(msg) from None


@dataclass(frozen=True)
class BuildSpec:
    """Everything a build needs, already substituted."""

    context: Path
    dockerfile: str | None
    dockerfile_content: str | None
    tags: tuple[str, ...]
    build_args: Mapping[str, str]
    target: str | None
    no_cache: bool
    cache_from: tuple[str, ...] = ()


def build_image(
    api: docker.APIClient,
    spec: BuildSpec,
    deadline: Deadline,
    on_line: Callable[[str], None] | None = None,
) -> str:
    """Build `spec` and tag it; return the image ID."""
    if not spec.context.is_dir():
        msg = f"build context {str(spec.context)!r} is not a directory; check working_directory"
        raise BuildError(msg)
    with _context_tar(spec) as (context, dockerfile):
        params: dict[str, Any] = {
            "t": spec.tags[0] if spec.tags else None,
            "dockerfile": dockerfile,
            "q": False,
            "nocache": spec.no_cache,
            "rm": True,
            "forcerm": True,
            "target": spec.target,
            "buildargs": json.dumps(dict(spec.build_args)),
        }
        if spec.cache_from:
            params["cachefrom"] = json.dumps(list(spec.cache_from))
        headers = {"Content-Type": "application/tar"}
        try:
            response = api._post(
                api._url("/build"),
                data=context,
                params=params,
                headers=headers,
                stream=True,
                timeout=None,
            )
        except requests.RequestException as exc:
            msg = f"cannot start the build: {exc}"
            raise EngineError(msg) from None
        built = _read_build(api, response, deadline, on_line)
    for extra in spec.tags[1:]:
        repository, _, tag = extra.rpartition(":")
        tag_image(api, built, repository, tag)
    return built


@contextlib.contextmanager
def _context_tar(spec: BuildSpec) -> Iterator[tuple[Any, str | None]]:
    from docker.utils.build import tar

    dockerfile = spec.dockerfile
    extra = None
    if spec.dockerfile_content is not None:
        dockerfile = ".freshflow.Dockerfile"
        extra = (dockerfile, spec.dockerfile_content)
    elif dockerfile is not None and not (spec.context / dockerfile).is_file():
        msg = f"Dockerfile {dockerfile!r} not found in build context {str(spec.context)!r}"
        raise BuildError(msg)
    fileobj = tar(
        str(spec.context),
        exclude=_dockerignore(spec.context),
        dockerfile=extra,
        gzip=False,
    )
    try:
        yield fileobj, dockerfile
    finally:
        fileobj.close()


def _dockerignore(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _read_build(
    api: docker.APIClient,
    response: requests.Response,
    deadline: Deadline,
    on_line: Callable[[str], None] | None,
) -> str:
    built = None
    try:
        for event in stream_events(api, response, deadline):
            message = _error_message(event)
            if message is not None:
                msg = f"the build failed: {message.strip()}"
                raise BuildError(msg)
            if "stream" in event and on_line is not None:
                text = str(event["stream"]).rstrip()
                if text:
                    on_line(text)
            aux = event.get("aux") or {}
            if aux.get("ID"):
                built = str(aux["ID"])
    except docker.errors.APIError as exc:
        msg = f"the build failed: {exc.explanation or exc}"
        raise BuildError(msg) from None
    if built is None:
        msg = "the build ended without an image ID from the engine"
        raise BuildError(msg)
    return built


class ExportWriteError(EngineError):
    """The export could not be written where it was to go (a full disk)."""


def export_image(
    api: docker.APIClient, image: str, into: IO[bytes], deadline: Deadline
) -> None:
    """Write the engine's `docker save` tar of `image` into `into`.

    ExportWriteError when `into` takes no more bytes.
    """
    try:
        response = api._get(
            api._url("/images/{0}/get", image), stream=True, timeout=None
        )
        api._raise_for_status(response)
    except (docker.errors.APIError, requests.RequestException) as exc:
        msg = f"cannot export image {image[:19]} from the engine: {exc}"
        raise EngineError(msg) from None
    sock = _response_socket(response)
    try:
        with deadline.watchdog(lambda: _cut(sock)):
            for chunk in response.iter_content(_EXPORT_CHUNK):
                _write(into, chunk, image)
    except (OSError, requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        if deadline.expired():
            raise deadline.error() from None
        msg = f"exporting image {image[:19]} from the engine failed: {exc}"
        raise EngineError(msg) from None
    finally:
        response.close()
    if deadline.expired():
        raise deadline.error()
