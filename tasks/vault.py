"""Secrets of the running pipelines, held in memory and keyed by run and step.

Inline credentials written in codefresh.yml (`credentials`, `accessKeyId`,
`secretAccessKey`) must reach the push task without passing through task
parameters, which Prefect records.  The flow puts them here; the task takes
them out.  Values are registered for log redaction as they come in.
"""

from __future__ import annotations

import threading

from flows.redaction import register

_lock = threading.Lock()
_store: dict[tuple[str, str, str], str] = {}


def put(run_id: str, step: str, key: str, value: str) -> None:
    """Keep `value` for `step` of run `run_id`."""
    register(value)
    with _lock:
        _store[(run_id, step, key)] = value


def get(run_id: str, step: str, key: str) -> str | None:
    """The value kept for `step`, or None."""
    with _lock:
        return _store.get((run_id, step, key))


def forget(run_id: str) -> None:
    """Drop every secret of a finished run."""
    with _lock:
        for entry in [k for k in _store if k[0] == run_id]:
            del _store[entry]
