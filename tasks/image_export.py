"""An engine image as `docker save` gives it, and its layers as gzip bodies.

`spooled_export` writes the engine's export to a temporary file and finds
the config and each layer's tar inside it; `LayerBody` reads one layer back
and compresses it as it is sent (`tasks.pgzip`), hashing both sides so the
uploader can check the diff ID and name the blob.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import docker

from flows.errors import EngineError, PushError
from tasks.engine import Deadline, ExportWriteError, export_image
from tasks.pgzip import BLOCK_SIZE, gzip_blocks
from tasks.registry_api import SEND_SIZE, UploadStopped

log = logging.getLogger(__name__)

_ROOM_MARGIN = 16 * 1024 * 1024  # tar headers and padding, with room to spare


@contextlib.contextmanager
def spooled_export(
    api: docker.APIClient,
    image_id: str,
    diff_ids: Sequence[str],
    size: int,
    spool_dir: Path,
    deadline: Deadline,
) -> Iterator[Export]:
    """The image exported into a temporary file in `spool_dir`, removed after.

    `size` is the image's size as the engine reports it; a directory with
    less room than that is refused before the export starts.
    """
    directory = spool_dir.expanduser()
    check_room(directory, size, image_id)
    try:
        spool_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below
            dir=directory, prefix="freshflow-export-", suffix=".tar"
        )
    except OSError as exc:
        msg = f"cannot spool the image export in {str(directory)!r} ({exc.strerror}); set FRESHFLOW_PUSH_SPOOL_DIR to a writable directory"
        raise EngineError(msg) from None
    with spool_file as spool:
        started = time.monotonic()
        try:
            export_image(api, image_id, spool, deadline)
        except ExportWriteError as exc:
            msg = f"{exc} in {str(directory)!r}; free space there or set FRESHFLOW_PUSH_SPOOL_DIR to a larger disk"
            raise EngineError(msg) from None
        spool.flush()
        log.debug(
            "exported %s (%d bytes) in %.1fs",
            image_id[:19],
            spool.tell(),
            time.monotonic() - started,
        )
        yield read_export(spool.name, image_id, diff_ids)


def check_room(directory: Path, size: int, image_id: str) -> None:
    """Refuse a spool directory with less free space than the export needs."""
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return  # creating the spool file says what is wrong with it
    needed = size + _ROOM_MARGIN
    if free < needed:
        msg = (
            f"not enough room in {str(directory)!r} to export image {image_id[:19]}: "
            f"it needs about {_mb(needed)}, {_mb(free)} are free; free space there "
            "or set FRESHFLOW_PUSH_SPOOL_DIR to a larger disk"
        )
        raise EngineError(msg)


def _mb(size: int) -> str:
    return f"{size / 1e6:,.0f} MB"


@dataclass(frozen=True)
class LayerRegion:
    """Where a layer's tar sits inside the spooled export."""

    offset: int
    size: int


@dataclass(frozen=True)
class Export:
    """An exported image: its config bytes and where each layer is."""

    path: str
    config: bytes
    layers: dict[str, LayerRegion]


def read_export(path: str, image_id: str, diff_ids: Sequence[str]) -> Export:
    try:
        with tarfile.open(path) as tar:
            manifest_file = tar.extractfile("manifest.json")
            entries = json.load(manifest_file) if manifest_file else []
            entry = entries[0]
            config_file = tar.extractfile(entry["Config"])
            config = config_file.read() if config_file else b""
            names = list(entry["Layers"])
            layers: dict[str, LayerRegion] = {}
            for name, diff_id in zip(names, diff_ids, strict=True):
                member = _resolve(tar, tar.getmember(name))
                layers.setdefault(diff_id, LayerRegion(member.offset_data, member.size))
    except (tarfile.TarError, KeyError, IndexError, ValueError, OSError) as exc:
        msg = f"the engine's export of image {image_id[:19]} cannot be read: {exc}"
        raise EngineError(msg) from None
    if "sha256:" + hashlib.sha256(config).hexdigest() != image_id:
        msg = f"the engine exported a config that does not match image {image_id[:19]}"
        raise EngineError(msg)
    return Export(path, config, layers)


def _resolve(tar: tarfile.TarFile, member: tarfile.TarInfo) -> tarfile.TarInfo:
    """Follow the links `docker save` writes for layers it already wrote."""
    for _ in range(16):
        if member.issym():
            target = os.path.normpath(
                os.path.join(os.path.dirname(member.name), member.linkname)
            )
        elif member.islnk():
            target = member.linkname
        else:
            return member
        member = tar.getmember(target)
    msg = f"link loop at {member.name}"
    raise ValueError(msg)


class LayerBody:
    """A layer's tar, gzip-compressed on `pool` as it is sent; hashes both sides."""

    def __init__(
        self,
        path: str,
        region: LayerRegion,
        level: int,
        pool: Executor,
        ahead: int,
        should_stop: Callable[[], bool],
        on_progress: Callable[[int, int], None],
    ) -> None:
        self._path = path
        self._region = region
        self._level = level
        self._pool = pool
        self._ahead = ahead
        self._should_stop = should_stop
        self._on_progress = on_progress
        self.raw = hashlib.sha256()
        self.packed = hashlib.sha256()
        self.size = 0
        self.stopped = False

    @property
    def digest(self) -> str:
        return "sha256:" + self.packed.hexdigest()

    def __iter__(self) -> Iterator[bytes]:
        try:
            with closing(
                gzip_blocks(self._blocks(), self._level, self._pool, self._ahead)
            ) as packed:
                for data in packed:
                    yield from self._emit(data)
        except UploadStopped:
            self.stopped = True  # the body ends short; the upload is cancelled

    def _blocks(self) -> Iterator[bytes]:
        left = self._region.size
        with open(self._path, "rb") as source:
            source.seek(self._region.offset)
            while left:
                if self._should_stop():
                    raise UploadStopped
                data = source.read(min(BLOCK_SIZE, left))
                if not data:
                    msg = "the spooled export ended early"
                    raise PushError(msg)
                left -= len(data)
                self.raw.update(data)
                yield data
                self._on_progress(self._region.size - left, self._region.size)

    def _emit(self, data: bytes) -> Iterator[bytes]:
        self.packed.update(data)
        self.size += len(data)
        for start in range(0, len(data), SEND_SIZE):
            if self._should_stop():
                raise UploadStopped
            yield data[start : start + SEND_SIZE]
