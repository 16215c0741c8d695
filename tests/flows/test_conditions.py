"""Table-driven tests of the `when` rules on plain data (semantics §6)."""

from __future__ import annotations

import pytest

from flows.conditions import (
    StepDependency,
    branch_allowed,
    conditions_hold,
    dependencies_reason,
    dependencies_state,
    validate_branch_filter,
    validate_expression,
)
from flows.errors import ExpressionError

BRANCHES = [
    # branch, only, ignore, reason (None: the step may run)
    ("main", None, None, None),
    ("main", [], [], None),
    ("main", ["main"], None, None),
    ("main", ["master", "main"], None, None),
    ("feature/x", ["main"], None, "branch 'feature/x' not in only: [main]"),
    ("mainline", ["main"], None, "branch 'mainline' not in only: [main]"),
    ("Main", ["main"], None, "branch 'Main' not in only: [main]"),
    ("FB-12", ["/^FB-/"], None, None),
    ("fb-12", ["/^FB-/i"], None, None),
    ("fb-12", ["/^FB-/"], None, "branch 'fb-12' not in only: [/^FB-/]"),
    ("my-FB-12", ["/^FB-/i"], None, "branch 'my-FB-12' not in only: [/^FB-/i]"),
    ("release/1.0", ["/release/"], None, None),  # unanchored search
    ("release/1.0", ["/^release\\/\\d+\\.\\d+$/"], None, None),
    ("release/1.x", ["/^release\\/\\d+\\.\\d+$/"], None, "not in only"),
    ("v1.2", ["/^v\\d/gy"], None, None),  # g and y change nothing here
    ("hotfix-1", None, ["/hotfix/"], "branch 'hotfix-1' matches ignore: /hotfix/"),
    ("my-hotfix", None, ["/hotfix$/"], "matches ignore: /hotfix$/"),
    ("hotfix-1", None, ["/hotfix$/"], None),
    ("hotfix", None, ["hotfix"], "branch 'hotfix' matches ignore: hotfix"),
    ("hotfix-1", None, ["hotfix"], None),  # plain names are exact
    ("HOTFIX-2", None, ["/hotfix/i"], "matches ignore: /hotfix/i"),
    ("main", ["main"], ["/ma/"], "branch 'main' matches ignore: /ma/"),
    ("dev", ["/.*/"], ["main", "/^rel/"], None),
    ("a/b", ["/a.b/"], None, None),
    ("/", ["/"], None, None),  # a lone slash is a name, not a regex
    ("//", ["//"], None, None),  # an empty regex matches everything
]


@pytest.mark.parametrize(("branch", "only", "ignore", "reason"), BRANCHES)
def test_branch_allowed(
    branch: str, only: list[str] | None, ignore: list[str] | None, reason: str | None
) -> None:
    result = branch_allowed(branch, only, ignore)
    if reason is None:
        assert result is None
    else:
        assert result is not None
        assert reason in result


def test_invalid_branch_regex_names_the_filter() -> None:
    with pytest.raises(ExpressionError, match="branch filter '/fix\\(/'"):
        branch_allowed("fix", ["/fix(/"], None)


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ("main", None),
        ("/^FB-/i", None),
        ("/fix(/", "is not a valid regular expression"),
        ("/[a-/", "is not a valid regular expression"),
    ],
)
def test_validate_branch_filter(entry: str, error: str | None) -> None:
    result = validate_branch_filter(entry)
    assert result is None if error is None else error in (result or "")


VARIABLES: dict[str, object] = {
    "steps": {"build": {"result": "success"}, "tests": {"result": "failure"}},
    "build": {"result": "success"},
    "workflow": {"result": "running"},
}

CONDITIONS = [
    # all, any, holds, text in the reason
    (None, None, True, None),
    ({}, {}, True, None),
    ({"built": "steps.build.result == 'success'"}, None, True, None),
    (
        {"built": "build.result == 'success'", "on_main": "'main' == 'main'"},
        None,
        True,
        None,
    ),
    (
        {
            "built": "build.result == 'success'",
            "tested": "steps.tests.result == 'success'",
        },
        None,
        False,
        "condition 'tested' (\"steps.tests.result == 'success'\") is false",
    ),
    (
        {"defined": 'includes("${{MY_VAR}}", "{{MY_VAR}}") == false'},
        None,
        False,
        "condition 'defined'",
    ),
    ({"defined": 'includes("value", "{{MY_VAR}}") == false'}, None, True, None),
    ({"pitfall": "Boolean('${{FEATURE}}') == true"}, None, True, None),
    (
        {"strict": '"1" == 1'},
        None,
        False,
        "condition 'strict' ('\"1\" == 1') failed: operator '=='",
    ),
    ({"unquoted": 'main == "main"'}, None, False, "Invalid identifier: 'main'"),
    ({"js": "a === b"}, None, False, "use '=='"),
    ({"object": "steps.build"}, None, False, "Cannot evaluate object variable"),
    (None, {"a": "false", "b": "workflow.result == 'running'"}, True, None),
    (None, {"a": "false", "b": "1 == 2"}, False, "no `any` condition holds"),
    (None, {"a": "false", "b": "nope"}, False, "condition 'b' ('nope') failed"),
    (None, {"a": "false", "b": "nope"}, False, "condition 'a' ('false') is false"),
    (None, {"a": "nope", "b": "true"}, True, None),
    ({"x": "true"}, {"y": "false"}, False, "no `any` condition holds"),
    ({"x": "false"}, {"y": "true"}, False, "condition 'x'"),
    ({"x": "true"}, {"y": "true"}, True, None),
    ({"empty": ""}, None, False, "condition 'empty' ('') is false"),
]


@pytest.mark.parametrize(("all_", "any_", "holds", "reason"), CONDITIONS)
def test_conditions_hold(
    all_: dict[str, str] | None,
    any_: dict[str, str] | None,
    holds: bool,
    reason: str | None,
) -> None:
    result, why = conditions_hold(all_, any_, VARIABLES)
    assert result is holds
    if reason is None:
        assert why is None
    else:
        assert why is not None
        assert reason in why


def _deps(*items: str) -> list[StepDependency]:
    """`"build"` or `"build:success,failure"` to (name, accepted states)."""
    result: list[StepDependency] = []
    for item in items:
        name, _, states = item.partition(":")
        result.append((name, frozenset(states.split(",")) if states else frozenset()))
    return result


DEPENDENCIES = [
    # all, any, results, state
    ([], [], {}, "ready"),
    (["build"], [], {"build": "success"}, "ready"),
    (["build"], [], {}, "waiting"),
    (["build"], [], {"build": "pending"}, "waiting"),
    (["build"], [], {"build": "running"}, "waiting"),
    (["build"], [], {"build": "terminating"}, "waiting"),
    (["build"], [], {"build": "failure"}, "never"),
    (["build"], [], {"build": "skipped"}, "never"),
    (["build"], [], {"build": "terminated"}, "never"),
    (["build:success"], [], {"build": "success"}, "ready"),
    (["build:failure"], [], {"build": "failure"}, "ready"),
    (["build:failure"], [], {"build": "success"}, "never"),
    (["build:success,failure"], [], {"build": "failure"}, "ready"),
    (["build:finished"], [], {"build": "success"}, "ready"),
    (["build:finished"], [], {"build": "failure"}, "ready"),
    (["build:finished"], [], {"build": "skipped"}, "ready"),
    (["build:finished"], [], {"build": "terminated"}, "ready"),
    (["build:finished"], [], {"build": "running"}, "waiting"),
    (["build:running"], [], {"build": "running"}, "ready"),
    (["build:skipped"], [], {"build": "skipped"}, "ready"),
    (["approve:approved"], [], {"approve": "approved"}, "ready"),
    (["approve:approved"], [], {"approve": "denied"}, "never"),
    (["approve:denied"], [], {"approve": "pending"}, "waiting"),
    (["a", "b"], [], {"a": "success", "b": "success"}, "ready"),
    (["a", "b"], [], {"a": "success", "b": "running"}, "waiting"),
    (["a", "b"], [], {"a": "running", "b": "failure"}, "never"),
    ([], ["a", "b"], {"a": "failure", "b": "success"}, "ready"),
    ([], ["a", "b"], {"a": "failure", "b": "running"}, "waiting"),
    ([], ["a", "b"], {"a": "failure", "b": "skipped"}, "never"),
    ([], ["a:failure", "b"], {"a": "failure", "b": "running"}, "ready"),
    ([], ["a:failure", "b:failure"], {"a": "success", "b": "success"}, "never"),
    (["a"], ["b", "c"], {"a": "running", "b": "success"}, "waiting"),
    (["a"], ["b", "c"], {"a": "success", "b": "failure", "c": "failure"}, "never"),
    (["a"], ["b", "c"], {"a": "success", "c": "success"}, "ready"),
]


@pytest.mark.parametrize(("all_", "any_", "results", "state"), DEPENDENCIES)
def test_dependencies_state(
    all_: list[str], any_: list[str], results: dict[str, str], state: str
) -> None:
    assert dependencies_state(_deps(*all_), _deps(*any_), results) == state
    reason = dependencies_reason(_deps(*all_), _deps(*any_), results)
    assert (reason is None) is (state == "ready")


REASONS = [
    (["build"], [], {"build": "failure"}, "step 'build' ended failure, needs success"),
    (
        ["build:success,failure"],
        [],
        {"build": "skipped"},
        "needs one of [failure, success]",
    ),
    (["build"], [], {}, "waiting for step 'build' (pending) to reach success"),
    (
        [],
        ["a", "b:failure"],
        {"a": "failure", "b": "success"},
        "none of the `any` steps can still qualify: 'a' is failure (needs success), "
        "'b' is success (needs failure)",
    ),
    ([], ["a", "b"], {"a": "failure"}, "waiting for one of the `any` steps"),
]


@pytest.mark.parametrize(("all_", "any_", "results", "reason"), REASONS)
def test_dependencies_reason(
    all_: list[str], any_: list[str], results: dict[str, str], reason: str
) -> None:
    assert reason in (dependencies_reason(_deps(*all_), _deps(*any_), results) or "")


EXPRESSIONS = [
    ("steps.build.result == 'success'", None),
    ('"${{CF_BRANCH}}" == "main"', None),
    ("${{BUILD_NUMBER}} > 5", None),  # substituted before parsing
    ("${{MAJOR}}.${{MINOR}} == 'x'", None),
    ('includes("${{MY_VAR}}", "{{MY_VAR}}") == false', None),
    ("missing_variable == 1", None),  # names are checked when evaluated
    ("", None),
    ("a === b", "'===' is not supported; use '=='"),
    ("a !== b", "use '!='"),
    ("a ? b : c", "ternary"),
    ("a b", "Cannot handle compound expressions"),
    ("nope(1)", "Unknown function: 'nope'"),
    ("upper(1, 2)", "upper() takes 1 argument(s)"),
    ("(a", "missing ')'"),
    ("x" * 12001, "the limit is 12000"),
    ("'${{A}}' == '" + "x" * 11990 + "'", "the limit is 12000"),
]


@pytest.mark.parametrize(("expression", "error"), EXPRESSIONS)
def test_validate_expression(expression: str, error: str | None) -> None:
    result = validate_expression(expression)
    if error is None:
        assert result is None
    else:
        assert result is not None
        assert error in result
