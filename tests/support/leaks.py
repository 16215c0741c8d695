"""Look for secrets where a run could leave them: Prefect's records and files."""

from __future__ import annotations

import os
from pathlib import Path
from uuid import UUID


def prefect_texts(flow_run_ids: list[str]) -> list[str]:
    """Logs, parameters, states and artifacts Prefect keeps for these runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    ids = [UUID(i) for i in flow_run_ids]
    runs_filter = FlowRunFilter(id=FlowRunFilterId(any_=ids))
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids))
        )
        runs = client.read_flow_runs(flow_run_filter=runs_filter)
        task_runs = client.read_task_runs(flow_run_filter=runs_filter)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=ids)
            )
        )
    texts = [log.message for log in logs]
    texts += [repr(r.parameters) + repr(r.state) for r in runs]
    texts += [repr(t) for t in task_runs]
    texts += [repr(artifact.data) for artifact in artifacts]
    assert len(runs) == len(ids)
    logged = {str(log.flow_run_id) for log in logs if "pushed" in log.message}
    assert logged == set(flow_run_ids), "the scan did not see every run's logs"
    return texts


def files_written_with(
    root: Path, secrets: tuple[str, ...], since: float
) -> list[Path]:
    """Files under `root` changed since `since` that contain one of `secrets`."""
    needles = [secret.encode() for secret in secrets]
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d != ".pyenv"]  # the Python install
        for name in files:
            path = Path(directory, name)
            try:
                info = path.stat()
                if info.st_mtime < since or info.st_size > 50_000_000:
                    continue
                content = path.read_bytes()
            except OSError:
                continue
            if any(needle in content for needle in needles):
                found.append(path)
    return found
