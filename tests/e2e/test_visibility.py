"""What a person sees in Prefect: task runs per step, stages, skips, status."""

from __future__ import annotations

import time
import uuid

PIPELINE = """\
version: '1.0'
stages: [build, push]
steps:
  build:
    title: Building the image
    stage: build
    type: build
    image_name: app
    disable_push: true
  push:
    stage: push
    type: push
    candidate: ${{build}}
    registry: local
  release:
    stage: push
    type: push
    candidate: ${{build}}
    registry: local
    tag: release
    when:
      branch:
        only: [main]
"""


def test_runs_show_steps_stages_skips_and_status(
    freshflow, workspace, registry_factory, integrations
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
    )

    integrations("local", registry_factory())
    result = freshflow(
        "run", str(workspace(PIPELINE)), "--branch", "feature/x", "--json"
    )
    assert result.exit_code == 0, result.stderr
    run_id = uuid.UUID(str(result.json()["flow_run_id"]))

    # Task runs reach the API as events, a moment after the flow returns.
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while True:
            flow_run = client.read_flow_run(run_id)
            task_runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
            )
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])
                )
            )
            settled = len(task_runs) == 3 and all(
                t.state is not None and t.state.is_final() for t in task_runs
            )
            if settled or time.monotonic() > deadline:
                break
            time.sleep(0.5)

    assert flow_run.state is not None
    assert flow_run.state.message == "Build completed successfully"
    by_name = {t.name: t for t in task_runs}
    assert set(by_name) == {"Building the image", "push", "release"}
    assert "build" in by_name["Building the image"].tags
    assert "push" in by_name["release"].tags
    skipped = by_name["release"].state
    assert skipped is not None
    assert skipped.name == "Skipped"
    assert "feature/x" in str(skipped.message)
    status = next(a for a in artifacts if a.key == "freshflow-build-status")
    assert "# Build success" in str(status.data)
    assert "| release | push | push | skipped |" in str(status.data)
    pushed = next(a for a in artifacts if a.key == "freshflow-pushed-images")
    assert f"{registry_host(result)}/app:latest" in str(pushed.data)


def registry_host(result) -> str:
    pushed = result.json()["steps"]["push"]["pushed"][0]
    return str(pushed).split("/", 1)[0]
