"""Secret redaction in every handler Prefect logs through, console and API.

A flow and a task log a registered secret every way code can: formatted
arguments, f-strings, exceptions with tracebacks, Prefect's own "finished in
state" lines, and a library logger.  What reached the server (the API
handler of flow and task runs) and the console (stderr) must show `***`.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from typing import Any

from prefect import flow, get_run_logger, task

from flows import redaction
from tests.platform.conftest import Platform
from tests.support.services import REPO_ROOT

SECRET = f"Redact-me-{secrets.token_hex(8)}"
ECR_TOKEN = f"eyJwYXlsb2FkIjoi{secrets.token_hex(12)}"


@task(name="leaky task", persist_result=False)
def leaky_task() -> None:
    logger = get_run_logger()
    logger.info("task logs the password %s", SECRET)
    logger.warning(f"task logs the token {ECR_TOKEN} in an f-string")  # noqa: G004
    logging.getLogger("tasks.engine").warning("library logger: %s", SECRET)
    try:
        msg = f"auth failed for {SECRET}"
        raise RuntimeError(msg)
    except RuntimeError:
        logger.exception("caught an error")


@task(name="failing task", persist_result=False, retries=0)
def failing_task() -> None:
    msg = f"registry said: bad token {ECR_TOKEN}"
    raise RuntimeError(msg)


@flow(name="redaction-check", persist_result=False)
def leaky_flow() -> None:
    redaction.install()
    redaction.register(SECRET)
    redaction.register(ECR_TOKEN)
    get_run_logger().info("flow logs %s and %s", SECRET, ECR_TOKEN)
    leaky_task()
    failing_task(return_state=True)


def _logs_of(flow_run_id: Any) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
    return [log.message for log in logs]


def test_every_handler_redacts(platform_api: Platform) -> None:
    """The flow runs in its own process, whose stderr is the console."""
    script = (
        "from tests.platform.test_redaction import leaky_flow\n"
        "state = leaky_flow(return_state=True)\n"
        "print(state.state_details.flow_run_id)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=os.environ | {"PREFECT_API_URL": platform_api.api_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    console = run.stderr

    joined = "\n".join(_logs_of(run.stdout.split()[-1]))
    for text in (joined, console):
        assert SECRET not in text
        assert ECR_TOKEN not in text
        assert "task logs the password ***" in text
        assert "task logs the token *** in an f-string" in text
        assert "flow logs *** and ***" in text
        assert "RuntimeError: auth failed for ***" in text  # the traceback
        assert "bad token ***" in text  # the engine's own failure lines
    assert "library logger: ***" in console


def test_every_handler_has_the_filter(platform_api: Platform) -> None:
    """After install(), no handler of any logger lacks the filter."""
    from prefect.logging.configuration import setup_logging

    setup_logging()
    redaction.install()
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    missing = [
        (logger.name, type(handler).__name__)
        for logger in loggers
        for handler in logger.handlers
        if not isinstance(handler, logging.NullHandler)
        and not any(isinstance(f, redaction.RedactingFilter) for f in handler.filters)
    ]
    assert missing == []
