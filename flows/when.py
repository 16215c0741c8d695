"""Whether a step runs (`when`) and whether a parallel step succeeded.

Glue between the input model and the condition language in
`flows.conditions`; every "no" comes with the reason shown in the UI, in
`plan` and in `run --json`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flows.conditions import branch_allowed, conditions_hold, dependencies_state
from flows.model import StepDependency, SuccessCriteria, When
from flows.report import StepOutcome


def _deps(items: list[StepDependency] | None) -> list[tuple[str, frozenset[str]]]:
    return [(d.name, frozenset(d.on)) for d in items or []]


def dependency_lists(
    when: When | None,
) -> tuple[list[tuple[str, frozenset[str]]], list[tuple[str, frozenset[str]]]]:
    """`when.steps` as (all, any) lists of (step, accepted states)."""
    if when is None or when.steps is None:
        return [], []
    if isinstance(when.steps, list):
        return _deps(when.steps), []
    return _deps(when.steps.all), _deps(when.steps.any)


Substitute = Callable[[str], str]


def _substituted(
    expressions: Mapping[str, str] | None, substitute: Substitute
) -> dict[str, str] | None:
    # Codefresh substitutes `${{...}}` as text before parsing (semantics 6.2).
    if expressions is None:
        return None
    return {label: substitute(text) for label, text in expressions.items()}


def skip_reason(
    when: When | None,
    branch: str,
    variables: Mapping[str, object],
    results: Mapping[str, str],
    substitute: Substitute,
) -> str | None:
    """Why the step must not run now, or None when every condition holds."""
    if when is None:
        return None
    if when.branch is not None:
        reason = branch_allowed(branch, when.branch.only, when.branch.ignore)
        if reason is not None:
            return reason
    deps_all, deps_any = dependency_lists(when)
    if deps_all or deps_any:
        state = dependencies_state(deps_all, deps_any, results)
        if state != "ready":
            names = ", ".join(
                f"{n} ({results.get(n, 'pending')})" for n, _ in deps_all + deps_any
            )
            return f"when.steps not satisfied: {names}"
    if when.condition is not None:
        ok, reason = conditions_hold(
            _substituted(when.condition.all, substitute),
            _substituted(when.condition.any, substitute),
            variables,
        )
        if not ok:
            return reason
    return None


def success_by_criteria(
    criteria: SuccessCriteria | None,
    children: Mapping[str, StepOutcome],
    variables: Mapping[str, object],
    substitute: Substitute,
) -> tuple[bool, str | None]:
    """A parallel step's result from its children (semantics 4.1)."""
    judged = dict(children)
    selection = criteria.steps if criteria else None
    if isinstance(selection, list):
        judged = {n: o for n, o in judged.items() if n in selection}
    elif selection is not None:
        if selection.only is not None:
            judged = {n: o for n, o in judged.items() if n in selection.only}
        for name in selection.ignore or []:
            judged.pop(name, None)
    failed = [
        n
        for n, o in judged.items()
        if o.result in ("failure", "terminated") and o.fail_fast
    ]
    if failed:
        return False, f"failed: {', '.join(failed)}"
    if criteria is not None and criteria.condition is not None:
        condition = criteria.condition
        return conditions_hold(
            _substituted(condition.all, substitute),
            _substituted(condition.any, substitute),
            variables,
        )
    return True, None
