"""Carry out a step's post-step operations inside the flow (Decisions 14).

Called by the flow after each step's outcome is recorded.  Every operation is
logged: one INFO line when applied, one WARNING line when it failed.  Nothing
here raises, so post-step operations never change the build status.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

from flows import annotations_store
from flows.post_steps import step_operations
from flows.report import StepOutcome
from flows.variables import Scope


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def run_post_step_operations(
    step_spec: object,
    outcome: StepOutcome,
    scope: Scope,
    build_id: str,
    pipeline_name: str,
    *,
    base_dir: Path | None = None,
    workflow_result: str = "running",
) -> None:
    """Plan, apply and log the post-step operations of one finished step.

    `scope` must already hold the step's exports (`imageId`...), as it does
    once `_Run.record` has run; `base_dir` anchors relative `file:` values.
    """
    logger = _logger()
    try:
        operations = step_operations(
            step_spec,
            outcome.result,
            scope.with_step(outcome.name),
            build_id=build_id,
            step_image_id=outcome.image_id,
            pipeline_name=pipeline_name,
            base_dir=base_dir,
            workflow_result=workflow_result,
        )
        results = annotations_store.apply_all(operations) if operations else []
    except Exception as exc:  # Decisions 14: never changes the build status
        logger.warning("step %s: post-step operations failed: %s", outcome.name, exc)
        return
    for result in results:
        what = result.operation.describe()
        if result.error is None:
            logger.info("step %s: %s", outcome.name, what)
        else:
            logger.warning("step %s: %s failed: %s", outcome.name, what, result.error)
