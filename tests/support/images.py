"""Tiny local images for tests, built with the docker SDK.

No image can be pulled on the test machines, so the base image is built
``FROM scratch`` out of Debian's static busybox: ``/bin/busybox`` plus a
symlink per applet, so ``sh``, ``echo``, ``ls`` and friends work in a
container. The applet links are written into the build context instead of
running ``busybox --install`` in a ``RUN`` step: the build then needs no
container and no network, and it gives the same image on every machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import ImageNotFound

BASE_IMAGE = "freshflow-test/busybox:1"
BUSYBOX = Path("/bin/busybox")
LABEL = "freshflow-test"

BASE_DOCKERFILE = """\
FROM scratch
COPY rootfs/ /
CMD ["sh"]
"""


def ensure_base_image(client: docker.DockerClient) -> str:
    """Build ``freshflow-test/busybox:1`` unless present; return its image ID."""
    with contextlib.suppress(ImageNotFound):
        return str(client.images.get(BASE_IMAGE).id)

    context = _BuildContext()
    context.add_file("Dockerfile", BASE_DOCKERFILE.encode())
    context.add_directory("rootfs", mode=0o755)
    context.add_directory("rootfs/bin", mode=0o755)
    context.add_file("rootfs/bin/busybox", BUSYBOX.read_bytes(), mode=0o755)
    for applet in _busybox_applets():
        context.add_symlink(f"rootfs/bin/{applet}", "busybox")
    context.add_directory("rootfs/tmp", mode=0o1777)
    return _build(client, context, BASE_IMAGE, {LABEL: "base"})


def build_test_image(
    client: docker.DockerClient, tag: str, marker: str, *, payload_bytes: int = 0
) -> str:
    """Build an image on the base image that differs from others by ``marker``.

    The image holds ``/freshflow-marker`` with ``marker`` in it, so two markers
    always give two image IDs. ``payload_bytes`` adds an incompressible file of
    that size, for pushes that must take measurable time. Returns the image ID.
    """
    ensure_base_image(client)

    context = _BuildContext()
    dockerfile = f"FROM {BASE_IMAGE}\nCOPY marker /freshflow-marker\n"
    context.add_file("marker", marker.encode())
    if payload_bytes:
        # Derived from the marker, so a rebuild gives the same layer.
        payload = hashlib.shake_256(marker.encode()).digest(payload_bytes)
        context.add_file("payload", payload)
        dockerfile += "COPY payload /freshflow-payload\n"
    context.add_file("Dockerfile", dockerfile.encode())
    return _build(client, context, tag, {LABEL: "test", f"{LABEL}.marker": marker})


@dataclass(frozen=True)
class PushResult:
    """What the engine reported while pushing one image reference."""

    digest: str | None
    errors: tuple[str, ...]


def push_image(
    client: docker.DockerClient,
    reference: str,
    auth_config: dict[str, str] | None = None,
) -> PushResult:
    """Push ``reference`` through the engine and collect digest and errors.

    The engine reports failures inside the stream, not as an exception, so
    the caller checks ``errors``.
    """
    repository, tag = _split_reference(reference)
    digest, errors = None, []
    events = client.api.push(
        repository, tag=tag, auth_config=auth_config, stream=True, decode=True
    )
    for event in events:
        if "error" in event:
            errors.append(str(event["error"]))
        aux = event.get("aux")
        if isinstance(aux, dict) and "Digest" in aux:
            digest = str(aux["Digest"])
    return PushResult(digest, tuple(errors))


def remove_images(client: docker.DockerClient, *references: str) -> None:
    """Remove image references a test created, ignoring ones already gone."""
    for reference in references:
        with contextlib.suppress(ImageNotFound):
            client.images.remove(reference)


class _BuildContext:
    """The entries of an in-memory tar build context."""

    def __init__(self) -> None:
        self._entries: list[tuple[tarfile.TarInfo, bytes | None]] = []

    def add_file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), mode
        self._entries.append((info, data))

    def add_symlink(self, name: str, target: str) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
        self._entries.append((info, None))

    def add_directory(self, name: str, mode: int) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, mode
        self._entries.append((info, None))

    def archive(self) -> io.BytesIO:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for info, data in self._entries:
                tar.addfile(info, None if data is None else io.BytesIO(data))
        buffer.seek(0)
        return buffer


def _build(
    client: docker.DockerClient,
    context: _BuildContext,
    tag: str,
    labels: dict[str, str],
) -> str:
    image, _logs = client.images.build(
        fileobj=context.archive(),
        custom_context=True,
        tag=tag,
        labels=labels,
        rm=True,
        forcerm=True,
    )
    return str(image.id)


def _split_reference(reference: str) -> tuple[str, str]:
    repository, _, tag = reference.rpartition(":")
    if not repository or "/" in tag:
        msg = f"image reference {reference!r} has no tag"
        raise ValueError(msg)
    return repository, tag


def _busybox_applets() -> list[str]:
    listing = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, check=True, text=True
    )
    return [name for name in listing.stdout.split() if name != "busybox"]
