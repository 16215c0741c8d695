"""What freshflow learned about layers it compressed, kept across runs.

A registry names a layer by the digest of its compressed bytes; the engine
names it by the digest of the uncompressed tar (the diff ID).  Learning one
from the other means compressing the layer, so each compression is recorded:
diff ID -> compressed digest and size.  With it a push asks the registry
whether it already has a layer before reading a byte of it, and a push of an
image whose every blob is there needs no export from the engine at all.

It also remembers, per registry host, the last repository each blob was
pushed to, so a push to a new repository can mount a layer from there
instead of uploading it again (as the engine does for `docker push`).

The cache holds digests and sizes only, in SQLite (safe for several worker
processes at once).  A lost or stale entry only costs a re-upload.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS layers (
    diff_id TEXT NOT NULL, level INTEGER NOT NULL,
    digest TEXT NOT NULL, size INTEGER NOT NULL,
    PRIMARY KEY (diff_id, level));
CREATE TABLE IF NOT EXISTS configs (image_id TEXT PRIMARY KEY, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS places (
    digest TEXT NOT NULL, host TEXT NOT NULL, repository TEXT NOT NULL,
    PRIMARY KEY (digest, host));
"""


@dataclass(frozen=True)
class Blob:
    """A blob as the registry knows it."""

    digest: str
    size: int


class BlobCache:
    """The diff ID -> compressed blob map, per gzip level, in one SQLite file."""

    def __init__(self, directory: Path, level: int) -> None:
        self._path = directory.expanduser() / "blobs.sqlite3"
        self._level = level

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection | None]:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, timeout=10)
        except (OSError, sqlite3.Error) as exc:
            log.warning(
                "layer cache %s unusable, pushing without it: %s", self._path, exc
            )
            yield None
            return
        try:
            with db:
                db.executescript(_SCHEMA)
                yield db
        except sqlite3.Error as exc:
            log.warning(
                "layer cache %s failed, pushing without it: %s", self._path, exc
            )
        finally:
            db.close()

    def layers(self, diff_ids: Iterable[str]) -> dict[str, Blob]:
        """The known compressed blobs of `diff_ids`."""
        wanted = sorted(set(diff_ids))
        found: dict[str, Blob] = {}
        with self._db() as db:
            if db is None:
                return found
            marks = ",".join("?" * len(wanted))
            rows = db.execute(
                f"SELECT diff_id, digest, size FROM layers WHERE level = ? AND diff_id IN ({marks})",
                (self._level, *wanted),
            )
            found = {diff_id: Blob(digest, size) for diff_id, digest, size in rows}
        return found

    def config_size(self, image_id: str) -> int | None:
        """The size of the image's config blob, if it was seen before."""
        with self._db() as db:
            if db is None:
                return None
            row = db.execute(
                "SELECT size FROM configs WHERE image_id = ?", (image_id,)
            ).fetchone()
            return int(row[0]) if row else None

    def remember_layer(self, diff_id: str, blob: Blob) -> None:
        """Record that `diff_id` compresses to `blob` at this level."""
        with self._db() as db:
            if db is not None:
                db.execute(
                    "INSERT OR REPLACE INTO layers VALUES (?, ?, ?, ?)",
                    (diff_id, self._level, blob.digest, blob.size),
                )

    def remember_config(self, image_id: str, size: int) -> None:
        """Record the size of an image's config blob."""
        with self._db() as db:
            if db is not None:
                db.execute(
                    "INSERT OR REPLACE INTO configs VALUES (?, ?)", (image_id, size)
                )

    def places(self, host: str, digests: Iterable[str]) -> dict[str, str]:
        """The repository of `host` each of `digests` was last pushed to."""
        wanted = sorted(set(digests))
        found: dict[str, str] = {}
        with self._db() as db:
            if db is None or not wanted:
                return found
            marks = ",".join("?" * len(wanted))
            rows = db.execute(
                f"SELECT digest, repository FROM places WHERE host = ? AND digest IN ({marks})",
                (host, *wanted),
            )
            found = dict(rows)
        return found

    def remember_places(
        self, host: str, repository: str, digests: Iterable[str]
    ) -> None:
        """Record that `repository` of `host` now holds `digests`."""
        with self._db() as db:
            if db is not None:
                db.executemany(
                    "INSERT OR REPLACE INTO places VALUES (?, ?, ?)",
                    [(digest, host, repository) for digest in set(digests)],
                )
