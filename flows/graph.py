"""Root `mode: parallel`: run steps as soon as their `when.steps` allow.

Each round starts every pending step whose dependencies are satisfied, skips
those that can never be, and waits for a running step to finish.  When
nothing runs and nothing can start, the steps left are skipped: a step is
never left pending.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flows.conditions import dependencies_state
from flows.when import dependency_lists

_POLL = 0.1


def run_graph(
    run: Any,
    start: Callable[..., Any],
    finish: Callable[..., None],
    skip: Callable[..., None],
) -> None:
    """Drive `run.plan.steps` by their dependencies (see module docstring)."""
    pending = list(run.plan.steps)
    running: dict[str, tuple[Any, Any]] = {}
    while pending or running:
        progressed = False
        results = {n: o.result for n, o in run.outcomes.items()}
        results.update({n: "running" for n in running})
        for step in list(pending):
            deps_all, deps_any = dependency_lists(step.when)
            state = (
                dependencies_state(deps_all, deps_any, results)
                if deps_all or deps_any
                else "ready"
            )
            if state == "waiting" and run.stopped_by is None:
                continue
            pending.remove(step)
            progressed = True
            started = start(run, step)  # skips with the reason when not runnable
            if started is not None:
                running[step.name] = (step, started)
        for name, (step, started) in list(running.items()):
            if started.finished():
                finish(run, step, started)
                del running[name]
                progressed = True
        if not running and pending and not progressed:
            for step in pending:
                skip(run, step, "its when.steps dependencies can never be satisfied")
            pending.clear()
        if not progressed:
            time.sleep(_POLL)
