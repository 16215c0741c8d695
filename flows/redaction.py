"""Keep secrets out of every log record that leaves the process.

Prefect does not mask secrets in logs.  Every secret freshflow handles (a
registry password, an ECR token, an AWS secret key) is registered here the
moment it is loaded, and a logging filter on every handler replaces it with
`***` in the message, its arguments and any exception text.
"""

from __future__ import annotations

import logging
import threading

MASK = "***"
_MIN_LENGTH = 4  # shorter values would mask ordinary words

_lock = threading.Lock()
_secrets: set[str] = set()


def register(secret: str | None) -> None:
    """Mask `secret` (and its base64 forms' plain value) from now on."""
    if secret and len(secret) >= _MIN_LENGTH:
        with _lock:
            _secrets.add(secret)


def redact(text: str) -> str:
    """`text` with every registered secret replaced by `***`."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and exception text; never drops records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            formatted = logging.Formatter().formatException(record.exc_info)
            message = f"{message}\n{formatted}"
            record.exc_info = None
            record.exc_text = None
        record.msg = redact(message)
        record.args = None
        return True


class ThreadTimeoutNoticeFilter(logging.Filter):
    """Drops Prefect's notice that thread timeouts cannot interrupt I/O.

    freshflow enforces step timeouts itself by closing the engine connection
    at the deadline (tasks/engine.py); Prefect's timeout is only a backstop,
    so the notice would mislead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "running in a worker thread" not in str(record.msg)


_FILTER = RedactingFilter()
_NOTICE_FILTER = ThreadTimeoutNoticeFilter()


def install() -> None:
    """Attach the filter to every handler of every logger configured so far.

    Prefect configures logging lazily, so this runs at the start of each flow
    run; a filter on a logger would miss records propagated from children.
    Handlers of all loggers count, not only Prefect's well-known ones: the
    API handlers also sit on `prefect.extra` and `prefect.workers`, a debug
    handler on `prefect._internal`, and libraries may add their own.
    """
    registry = logging.Logger.manager.loggerDict
    loggers = [logging.getLogger()] + [
        logger
        for logger in list(registry.values())
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_NOTICE_FILTER)
                handler.addFilter(_FILTER)
