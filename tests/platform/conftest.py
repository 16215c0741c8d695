"""A real Prefect platform for this package: PostgreSQL, server, process worker.

`scripts/server` starts it, as people start it, but with its own state
directory, port, database and role, so a team server on the same machine is
never touched; `scripts/server purge` drops it all after the package's last
test.  The worker inherits the script's environment, which points boto3 at
a `moto_server` (and nowhere else), so runs can push to an ECR stand-in.
`platform_api` points this process at it (Prefect settings and
`PREFECT_API_URL` for subprocesses) and restores both afterwards; the
session's `prefect_server` harness is not used here.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.support.aws import Moto, start_moto
from tests.support.services import REPO_ROOT, ServiceStartError, free_port

SERVER_SCRIPT = REPO_ROOT / "scripts" / "server"
POOL = "freshflow"  # prefect.yaml's pool; this server's database is its own
AWS_SETTINGS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL_ECR",
    "AWS_ENDPOINT_URL_STS",
)


@dataclass(frozen=True)
class Platform:
    """The running platform and what tests need to reach or inspect it."""

    api_url: str
    state: Path
    database: str
    script_env: dict[str, str]

    @property
    def worker_log(self) -> Path:
        return self.state / "worker.log"

    def dump_database(self) -> str:
        """The whole Prefect database as SQL text (`pg_dump`)."""
        port = _postgres_port()
        command = ["runuser", "-u", "postgres", "--", "pg_dump", "-p", port]
        result = subprocess.run(
            [*command, self.database], capture_output=True, text=True, check=True
        )
        return result.stdout


def _postgres_port() -> str:
    line = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    return line.split()[2]


def _server(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SERVER_SCRIPT), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="package")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """The only AWS the platform's worker can reach."""
    with start_moto(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="package")
def platform(
    tmp_path_factory: pytest.TempPathFactory, moto: Moto
) -> Iterator[Platform]:
    """PostgreSQL + Prefect server + process worker, for this package."""
    name = f"freshflow_test_{secrets.token_hex(4)}"
    port = free_port()
    state = tmp_path_factory.mktemp("platform") / "state"
    ignored = {"PREFECT_API_URL", *AWS_SETTINGS}
    env = {k: v for k, v in os.environ.items() if k not in ignored}
    env |= {
        "AWS_ENDPOINT_URL": moto.endpoint_url,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "FRESHFLOW_SERVER_STATE": str(state),
        "FRESHFLOW_SERVER_PORT": str(port),
        "FRESHFLOW_DB_NAME": name,
        "FRESHFLOW_DB_USER": name,
        "FRESHFLOW_WORK_POOL": POOL,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    started = _server("start", env)
    try:
        if started.returncode != 0:
            msg = f"scripts/server start failed:\n{started.stdout}{started.stderr}"
            raise ServiceStartError(msg)
        yield Platform(f"http://127.0.0.1:{port}/api", state, name, env)
    finally:
        purged = _server("purge", env)
        assert purged.returncode == 0, purged.stderr


@pytest.fixture(scope="package")
def platform_api(platform: Platform) -> Iterator[Platform]:
    """This process and its subprocesses talk to the platform meanwhile."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_API_URL", platform.api_url)
        with temporary_settings({PREFECT_API_URL: platform.api_url}):
            yield platform


@pytest.fixture(scope="package")
def freshflow_platform() -> Callable[..., tuple[int, str]]:
    """`freshflow deploy|server ...` through the platform commands' Typer app."""
    from flows.cli_platform import register

    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """freshflow"""

    register(app)
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout + result.stderr

    return invoke
