"""`freshflow server`: one background server that later commands reuse.

A real `prefect server start` on a fresh PREFECT_HOME (SQLite), started and
stopped through the commands people type.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from flows import localserver
from tests.support.services import free_port

pytestmark = pytest.mark.services


def test_start_reuse_and_stop(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    freshflow_platform: Callable[..., tuple[int, str]],
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("PREFECT_HOME", str(home))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"

    code, output = freshflow_platform("server", "start", "--port", str(port))
    try:
        assert code == 0, output
        assert f"export PREFECT_API_URL={url}" in output
        server = localserver.running()
        assert server is not None
        assert server.answers()

        code, output = freshflow_platform("server", "start", "--port", str(port))
        assert code == 0, output
        assert localserver.running() == server  # the same process, reused

        code, output = freshflow_platform("server", "status")
        assert code == 0, output
        assert output.strip().endswith(f"at {url}: answers")

        assert localserver.use_running_server() == url
        assert os.environ["PREFECT_API_URL"] == url
        assert localserver.use_running_server() is None  # already set
    finally:
        code, output = freshflow_platform("server", "stop")
    assert code == 0, output
    assert "stopped" in output
    assert not server.alive()
    code, output = freshflow_platform("server", "status")
    assert (code, output.strip()) == (1, "local Prefect server: not running")


def test_a_profile_with_an_api_url_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    (tmp_path / "profiles.toml").write_text(
        'active = "team"\n\n[profiles.team]\n'
        'PREFECT_API_URL = "http://prefect.example:4200/api"\n'
    )
    assert localserver._profile_api_url() == "http://prefect.example:4200/api"
    assert localserver.use_running_server() is None
    assert "PREFECT_API_URL" not in os.environ


def test_nothing_recorded_means_nothing_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    (tmp_path / localserver.STATE_NAME).write_text(
        '{"pid": 999999999, "port": 1, "home": "x"}'
    )
    assert localserver.running() is None
    assert localserver.use_running_server() is None
