"""Send the warnings of freshflow's own modules to the Prefect run they belong to.

Prefect ships the records of its run loggers to the API; the `tasks.*`
modules log with `logging.getLogger(__name__)` (a cancelled upload the
registry kept, a layer tried again, a promotion that changes a digest), and
those would reach only the worker's console.  `install` adds an API handler
to the `tasks` logger that sends a record when it is made inside a flow or
task run (threads a task starts carry its context, see `tasks.registry_push`)
and drops it otherwise, without Prefect's missing-run warning.
"""

from __future__ import annotations

import logging

from prefect.exceptions import MissingContextError
from prefect.logging.handlers import APILogHandler

_LOGGER = "tasks"


class RunLogHandler(APILogHandler):
    """An API log handler for records made inside a run; others are dropped."""

    def emit(self, record: logging.LogRecord) -> None:
        from prefect.context import get_run_context

        try:
            get_run_context()
        except MissingContextError:
            return
        super().emit(record)


def install() -> None:
    """Attach the handler to the `tasks` logger once, for INFO and up."""
    logger = logging.getLogger(_LOGGER)
    if not any(isinstance(h, RunLogHandler) for h in logger.handlers):
        handler = RunLogHandler()
        handler.setLevel(logging.INFO)
        logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
