"""The `when` rules of a step, on plain data (semantics §6).

Branch filters, condition expressions and step-state dependencies. Each check
answers with a reason a user can read when the step must not run;
the YAML model and the glue that feeds it live elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final, Literal

from flows.errors import ExpressionError
from flows.expressions import (
    MAX_LENGTH,
    compile_js_regex,
    evaluate_condition,
    parse,
)

StepState = Literal[
    "success",
    "failure",
    "skipped",
    "pending",
    "running",
    "terminated",
    "terminating",
    "approved",
    "denied",
]
StepDependency = tuple[str, frozenset[str]]
DependencyState = Literal["ready", "waiting", "never"]

DEFAULT_ACCEPTED: Final = frozenset({"success"})
FINISHED: Final = frozenset({"success", "failure", "skipped", "terminated"})
# States a step never leaves; a dependency that ends in one it does not
# accept can never be satisfied.
FINAL_STATES: Final = FINISHED | {"approved", "denied"}

_REGEX_LITERAL: Final = re.compile(r"/(.*)/([gimsuy]*)", re.DOTALL)
# The validator's pattern for a variable reference (semantics §12).
_REFERENCE: Final = re.compile(r"\$\{\{.+?\}\}")


def validate_expression(expression: str) -> str | None:
    """Check an expression's syntax; return the error message or None.

    `${{...}}` references are substituted before an expression is parsed, so
    here each one stands for a value, whether or not it is quoted.
    """
    try:
        if len(expression) > MAX_LENGTH:
            parse(expression)
        parse(_REFERENCE.sub("_", expression))
    except ExpressionError as exc:
        return str(exc)
    return None


def validate_branch_filter(entry: str) -> str | None:
    """Check one `only`/`ignore` entry; return the error message or None."""
    try:
        _branch_regex(entry)
    except ExpressionError as exc:
        return str(exc)
    return None


def branch_allowed(
    branch: str, only: Sequence[str] | None, ignore: Sequence[str] | None
) -> str | None:
    """Return None when `branch` passes `only` and `ignore`, else the reason.

    Entries are exact branch names or JavaScript regex literals such as
    `/^FB-/i`, searched anywhere in the name. An empty or missing `only`
    allows every branch.
    """
    if only and not any(_branch_matches(branch, entry) for entry in only):
        return f"branch {branch!r} not in only: [{', '.join(only)}]"
    for entry in ignore or ():
        if _branch_matches(branch, entry):
            return f"branch {branch!r} matches ignore: {entry}"
    return None


def _branch_regex(entry: str) -> re.Pattern[str] | None:
    literal = _REGEX_LITERAL.fullmatch(entry)
    if literal is None:
        return None
    try:
        return compile_js_regex(literal[1], literal[2])
    except ExpressionError as exc:
        msg = f"branch filter {entry!r} is not a valid regular expression: {exc}"
        raise ExpressionError(msg) from exc


def _branch_matches(branch: str, entry: str) -> bool:
    regex = _branch_regex(entry)
    return branch == entry if regex is None else regex.search(branch) is not None


def conditions_hold(
    all_: Mapping[str, str] | None,
    any_: Mapping[str, str] | None,
    variables: Mapping[str, object],
) -> tuple[bool, str | None]:
    """Evaluate `when.condition`: every `all` expression and one `any` must hold.

    An expression that cannot be evaluated counts as false; the reason then
    carries its error. Returns (True, None) or (False, reason).
    """
    for label, expression in (all_ or {}).items():
        held, reason = _condition(label, expression, variables)
        if not held:
            return False, reason
    if not any_:
        return True, None
    reasons: list[str] = []
    for label, expression in any_.items():
        held, reason = _condition(label, expression, variables)
        if held:
            return True, None
        reasons.append(reason)
    return False, "no `any` condition holds: " + "; ".join(reasons)


def _condition(
    label: str, expression: str, variables: Mapping[str, object]
) -> tuple[bool, str]:
    """Evaluate one labelled expression; the reason is for when it fails."""
    try:
        held = evaluate_condition(expression, variables)
    except ExpressionError as exc:
        return False, f"condition {label!r} ({expression!r}) failed: {exc}"
    return held, f"condition {label!r} ({expression!r}) is false"


def dependencies_state(
    deps_all: Sequence[StepDependency],
    deps_any: Sequence[StepDependency],
    results: Mapping[str, str],
) -> DependencyState:
    """Whether `when.steps` allows a step to start now, later, or never.

    `results` maps step names to their current state; a step missing from
    it is pending. An empty set of accepted states means `success`.
    """
    return _judge(deps_all, deps_any, results)[0]


def dependencies_reason(
    deps_all: Sequence[StepDependency],
    deps_any: Sequence[StepDependency],
    results: Mapping[str, str],
) -> str | None:
    """Why `when.steps` does not allow the step to start, or None if it does."""
    return _judge(deps_all, deps_any, results)[1]


def _accepted(states: frozenset[str]) -> frozenset[str]:
    states = states or DEFAULT_ACCEPTED
    return states - {"finished"} | FINISHED if "finished" in states else states


def _wanted(states: frozenset[str]) -> str:
    names = sorted(states or DEFAULT_ACCEPTED)
    return names[0] if len(names) == 1 else f"one of [{', '.join(names)}]"


def _judge(
    deps_all: Sequence[StepDependency],
    deps_any: Sequence[StepDependency],
    results: Mapping[str, str],
) -> tuple[DependencyState, str | None]:
    """The state of the dependencies and, unless ready, why."""
    waiting: list[str] = []
    for name, states in deps_all:
        state = results.get(name, "pending")
        if state in _accepted(states):
            continue
        if state in FINAL_STATES:
            return "never", f"step {name!r} ended {state}, needs {_wanted(states)}"
        waiting.append(
            f"waiting for step {name!r} ({state}) to reach {_wanted(states)}"
        )
    found = [(name, results.get(name, "pending"), states) for name, states in deps_any]
    if found and not any(state in _accepted(states) for _, state, states in found):
        detail = ", ".join(
            f"{name!r} is {state} (needs {_wanted(states)})"
            for name, state, states in found
        )
        if all(state in FINAL_STATES for _, state, _ in found):
            return "never", f"none of the `any` steps can still qualify: {detail}"
        waiting.append(f"waiting for one of the `any` steps: {detail}")
    if waiting:
        return "waiting", "; ".join(waiting)
    return "ready", None
