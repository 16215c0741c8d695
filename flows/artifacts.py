"""What a person sees of a run in the Prefect UI besides logs: artifacts.

The build-status artifact (markdown: status, message, a table of steps) is
published by the flow's state hook; the pushed-images table accumulates under
a stable key, so its history spans runs.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.schemas.objects import State

log = logging.getLogger(__name__)

STATUS_KEY = "freshflow-build-status"
PUSHED_KEY = "freshflow-pushed-images"


def _report(state: State) -> dict[str, Any] | None:
    try:
        data = state.result(raise_on_failure=False)
    except Exception:
        return None
    return data if isinstance(data, dict) and "steps" in data else None


def status_markdown(report: dict[str, Any]) -> str:
    """The build status as a markdown page: headline, then one row per step."""
    lines = [
        f"# Build {report['status']}",
        "",
        str(report["message"]),
        "",
        "| step | stage | type | result | reason |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, step in report["steps"].items():
        reason = str(step.get("reason") or "").replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {name} | {step.get('stage', '')} | {step['type']} | {step['result']} | {reason} |"
        )
    return "\n".join(lines)


def publish_status(state: State) -> None:
    """Publish the build status and pushed images of a finished run."""
    report = _report(state)
    if report is None:
        return
    try:
        create_markdown_artifact(
            status_markdown(report), key=STATUS_KEY, description=str(report["message"])
        )
        pushed = [
            {
                "image": image["reference"],
                "digest": image["digest"],
                "image ID": image["imageId"],
                "size": image["size"],
                "step": image["step"],
                "run": report["flow_run_id"],
            }
            for image in report.get("images", [])
        ]
        if pushed:
            create_table_artifact(
                pushed, key=PUSHED_KEY, description="Images pushed by this run"
            )
    except Exception as exc:
        log.warning("could not publish the build status artifact: %s", exc)
