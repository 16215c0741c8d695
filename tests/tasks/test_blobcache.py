"""The layer cache: what it remembers, per level and per registry host."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tasks.blobcache import Blob, BlobCache

DIFF_A, DIFF_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
BLOB_A = Blob("sha256:" + "1" * 64, 1234)


def test_a_layer_is_remembered_for_its_level_only(tmp_path: Path) -> None:
    BlobCache(tmp_path, 6).remember_layer(DIFF_A, BLOB_A)

    assert BlobCache(tmp_path, 6).layers([DIFF_A, DIFF_B]) == {DIFF_A: BLOB_A}
    assert BlobCache(tmp_path, 1).layers([DIFF_A]) == {}


def test_config_sizes_are_remembered(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, 6)
    assert cache.config_size(DIFF_A) is None
    cache.remember_config(DIFF_A, 987)
    assert cache.config_size(DIFF_A) == 987


def test_the_last_repository_of_a_host_is_remembered(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, 6)
    cache.remember_places("reg:5000", "team/one", [BLOB_A.digest])
    cache.remember_places("reg:5000", "team/two", [BLOB_A.digest])
    cache.remember_places("other:5000", "team/three", [BLOB_A.digest])

    assert cache.places("reg:5000", [BLOB_A.digest]) == {BLOB_A.digest: "team/two"}
    assert cache.places("nowhere:1", [BLOB_A.digest]) == {}
    assert cache.places("reg:5000", []) == {}


def test_an_unusable_directory_warns_and_remembers_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    cache = BlobCache(blocked, 6)

    with caplog.at_level(logging.WARNING, logger="tasks.blobcache"):
        cache.remember_layer(DIFF_A, BLOB_A)
        assert cache.layers([DIFF_A]) == {}
    assert "pushing without it" in caplog.text
