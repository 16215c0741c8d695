"""Fixtures: the real Docker Engine, registries, moto and a Prefect server.

Everything here starts real processes (tests/support) and stops them again.
The Prefect server is Prefect's own test harness (a temporary SQLite-backed
server), started once per session by the tests that need it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

# Prefect reads these when first used; they must be set before it is.
_HOME = Path(tempfile.mkdtemp(prefix="freshflow-tests-"))
os.environ.setdefault("PREFECT_HOME", str(_HOME / "prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
# The registry push path's layer cache, out of the real home directory.
os.environ.setdefault("FRESHFLOW_PUSH_CACHE_DIR", str(_HOME / "push-cache"))

import docker  # noqa: E402
import pytest  # noqa: E402

from tests.support.images import ensure_base_image  # noqa: E402
from tests.support.registry import Registry, start_registry  # noqa: E402
from tests.support.services import ensure_docker  # noqa: E402


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server for the whole session."""
    from prefect.logging.configuration import setup_logging
    from prefect.testing.utilities import prefect_test_harness

    setup_logging()  # before any CliRunner swaps sys.stderr for a while
    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    return ensure_docker()


@pytest.fixture(scope="session")
def base_image(docker_client: docker.DockerClient) -> str:
    ensure_base_image(docker_client)
    return "freshflow-test/busybox:1"


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[Callable[..., Registry]]:
    """Start registries for one test; all are stopped at its end."""
    started: list[Registry] = []

    def start(name: str = "reg", **options: object) -> Registry:
        registry = start_registry(tmp_path / f"{name}-{len(started)}", **options)  # type: ignore[arg-type]
        started.append(registry)
        return registry

    yield start
    for registry in started:
        registry.stop()


@pytest.fixture
def integrations(prefect_server: None) -> Iterator[Callable[..., None]]:
    """Save registry integrations (blocks) for one test; removed at its end."""
    from pydantic import SecretStr

    from blocks.registry import DockerRegistry
    from blocks.store import list_integrations, remove, save

    def add(
        name: str,
        registry: Registry,
        *,
        default: bool = False,
        prefix: str = "",
        with_auth: bool = True,
        host: str | None = None,
    ) -> None:
        password = registry.password if with_auth else None
        block = DockerRegistry(
            domain=host or registry.host,
            username=registry.username if with_auth else None,
            password=SecretStr(password) if password else None,
            default=default,
            prefix=prefix,
        )
        save(name, block)

    yield add
    for name in list_integrations():
        remove(name)


@pytest.fixture
def workspace(tmp_path: Path, base_image: str) -> Callable[[str], Path]:
    """A pipeline directory: codefresh.yml plus a Dockerfile on the base image."""

    def make(pipeline: str, marker: str | None = None) -> Path:
        directory = tmp_path / "checkout"
        directory.mkdir(exist_ok=True)
        (directory / "Dockerfile").write_text(
            f"FROM {base_image}\nCOPY marker.txt /marker.txt\n"
        )
        (directory / "marker.txt").write_text(marker or str(tmp_path))
        path = directory / "codefresh.yml"
        path.write_text(pipeline)
        return path

    return make
