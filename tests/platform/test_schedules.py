"""Schedules made by `freshflow deploy` produce runs on the server.

The deployment goes to a pool no worker polls, so its runs stay scheduled
and can be looked at; the server's scheduler creates them within seconds of
the deployment being saved.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.platform.conftest import Platform

pytestmark = pytest.mark.services

PIPELINE = """\
version: '1.0'
steps:
  build:
    type: build
    image_name: platform/scheduled
    disable_push: true
"""


def _scheduled_runs(deployment_id: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    scheduled = FlowRunFilter(
        state=FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])
        )
    )
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=scheduled,
            deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[deployment_id])
            ),
        )


def test_an_interval_schedule_produces_scheduled_runs(
    platform_api: Platform,
    tmp_path: Path,
    freshflow_platform: Callable[..., tuple[int, str]],
) -> None:
    from prefect.client.orchestration import get_client

    pipeline = tmp_path / "codefresh.yml"
    pipeline.write_text(PIPELINE)
    pool = f"idle-{secrets.token_hex(3)}"
    code, output = freshflow_platform(
        *("deploy", str(pipeline), "--name", "every-minute", "--interval", "1m"),
        *("--pool", pool, "--var", "IMAGE_TAG=nightly"),
    )
    assert code == 0, output
    assert f"created process work pool '{pool}'" in output
    assert "schedule: every 1m (active)" in output
    assert f"no worker polls pool '{pool}'" in output
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("codefresh-pipeline/every-minute")

    deadline = time.monotonic() + 60
    runs = _scheduled_runs(deployment.id)
    while len(runs) < 2 and time.monotonic() < deadline:
        time.sleep(1)
        runs = _scheduled_runs(deployment.id)

    assert len(runs) >= 2
    starts = sorted(run.expected_start_time for run in runs)
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(starts)} == {60}
    assert all(
        run.parameters
        == {"pipeline_file": str(pipeline), "variables": {"IMAGE_TAG": "nightly"}}
        for run in runs
    )


def test_paused_schedules_produce_no_runs(
    platform_api: Platform,
    tmp_path: Path,
    freshflow_platform: Callable[..., tuple[int, str]],
) -> None:
    from prefect.client.orchestration import get_client

    pipeline = tmp_path / "codefresh.yml"
    pipeline.write_text(PIPELINE)
    code, output = freshflow_platform(
        *("deploy", str(pipeline), "--name", "paused", "--cron", "*/5 * * * *"),
        *("--pool", f"idle-{secrets.token_hex(3)}", "--paused"),
    )
    assert code == 0, output
    assert "schedule: cron '*/5 * * * *' UTC (paused)" in output
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("codefresh-pipeline/paused")
    assert [s.active for s in deployment.schedules] == [False]
    time.sleep(6)  # the recent-deployments scheduler looks every 5 s
    assert _scheduled_runs(deployment.id) == []


def test_a_secret_looking_variable_is_refused_before_anything_is_saved(
    platform_api: Platform,
    tmp_path: Path,
    freshflow_platform: Callable[..., tuple[int, str]],
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    pipeline = tmp_path / "codefresh.yml"
    pipeline.write_text(PIPELINE)
    code, output = freshflow_platform(
        "deploy", str(pipeline), "--name", "leaky", "--var", "REG_PASSWORD=hunter2"
    )
    assert code == 4
    assert "looks like a secret" in output
    assert "hunter2" not in output
    with get_client(sync_client=True) as client, pytest.raises(ObjectNotFound):
        client.read_deployment_by_name("codefresh-pipeline/leaky")
