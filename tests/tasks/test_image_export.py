"""The spooled export: room checked first, a full disk reported, nothing left."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from flows.errors import EngineError
from tasks import engine
from tasks.image_export import check_room, spooled_export
from tests.support.images import build_test_image, remove_images

IMAGE_ID = "sha256:" + "ab" * 32


def test_a_directory_with_room_is_taken(tmp_path: Path) -> None:
    check_room(tmp_path, 1_000, IMAGE_ID)


def test_too_little_room_names_the_directory_and_the_setting(tmp_path: Path) -> None:
    with pytest.raises(EngineError) as refused:
        check_room(tmp_path, 1 << 60, IMAGE_ID)
    message = str(refused.value)
    assert repr(str(tmp_path)) in message
    assert "FRESHFLOW_PUSH_SPOOL_DIR" in message
    assert IMAGE_ID[:19] in message


@pytest.fixture
def image(docker_client: docker.DockerClient, base_image: str) -> Iterator[str]:
    reference = f"freshflow-test/export:{time.time_ns()}"
    build_test_image(docker_client, reference, reference, payload_bytes=3_000_000)
    yield docker_client.images.get(reference).id
    remove_images(docker_client, reference)


def test_a_full_disk_during_the_export_is_an_engine_error(image: str) -> None:
    api = engine.connect()
    with open("/dev/full", "wb") as full, pytest.raises(engine.ExportWriteError) as e:
        engine.export_image(api, image, full, engine.Deadline(None))
    assert "No space left on device" in str(e.value)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs, too small for the test image's export."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


def test_a_small_spool_disk_is_refused_before_the_export(
    image: str, small_disk: Path, docker_client: docker.DockerClient
) -> None:
    api = engine.connect()
    size = int(docker_client.api.inspect_image(image)["Size"])
    with (
        pytest.raises(EngineError) as refused,
        spooled_export(api, image, [], size, small_disk, engine.Deadline(None)),
    ):
        pass
    assert "not enough room" in str(refused.value)
    assert list(small_disk.iterdir()) == []
