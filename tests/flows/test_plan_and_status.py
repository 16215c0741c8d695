"""The pure core: build status rules, plans, references and variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.integrations import Catalog, IntegrationInfo
from flows.loader import load_pipeline_text
from flows.plan import translate
from flows.references import parse_reference, repository_path, target_repository
from flows.report import StepOutcome, build_status
from flows.resolve import resolve_build, resolve_push
from flows.validation import check, parse_timeout
from flows.variables import Scope, normalize_branch


def outcome(
    name: str,
    result: str,
    *,
    fail_fast: bool = True,
    strict: bool | None = None,
    parent: str | None = None,
    kind: str = "push",
) -> StepOutcome:
    return StepOutcome(
        name, kind, result, fail_fast=fail_fast, strict_fail_fast=strict, parent=parent
    )  # type: ignore[arg-type]


STATUS = [
    pytest.param([outcome("a", "success")], False, "success", id="all-green"),
    pytest.param([outcome("a", "failure")], False, "failure", id="fail-fast-failure"),
    pytest.param(
        [outcome("a", "failure", fail_fast=False)],
        False,
        "success",
        id="fail-fast-false",
    ),
    pytest.param(
        [outcome("a", "failure", fail_fast=False)], True, "failure", id="root-strict"
    ),
    pytest.param(
        [outcome("a", "failure", fail_fast=False, strict=True)],
        False,
        "failure",
        id="step-strict",
    ),
    pytest.param(
        [outcome("a", "failure", fail_fast=False, strict=False)],
        True,
        "success",
        id="step-strict-false-wins",
    ),
    pytest.param([outcome("a", "skipped")], True, "success", id="skipped"),
    pytest.param([outcome("a", "terminated")], False, "failure", id="timed-out"),
    pytest.param(
        [
            outcome("p", "success", fail_fast=False, kind="parallel"),
            outcome("c", "failure", parent="p"),
        ],
        True,
        "success",
        id="parent-fail-fast-false-always-success",
    ),
    pytest.param(
        [outcome("p", "failure", kind="parallel"), outcome("c", "failure", parent="p")],
        False,
        "failure",
        id="parent-fails-with-child",
    ),
    pytest.param(
        [
            outcome("p", "success", kind="parallel"),
            outcome("c", "failure", fail_fast=False, strict=True, parent="p"),
        ],
        False,
        "failure",
        id="strict-child-under-fail-fast-parent",
    ),
]


@pytest.mark.parametrize(("outcomes", "root_strict", "expected"), STATUS)
def test_build_status(
    outcomes: list[StepOutcome], root_strict: bool, expected: str
) -> None:
    status, _ = build_status({o.name: o for o in outcomes}, root_strict)
    assert status == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("1.5h", 5400),
        ("45m", 2700),
        (".5s", 0.5),
        ("0s", None),
        ("0h", None),
        (None, None),
    ],
)
def test_parse_timeout(text: str | None, seconds: float | None) -> None:
    assert parse_timeout(text) == seconds


@pytest.mark.parametrize(
    ("branch", "normalized"),
    [
        ("main", "main"),
        ("feature/Login-Page#2", "feature_Login-Page_2"),
        (".hidden", "_hidden"),
        ("-dash", "_dash"),
        ("x" * 200, "x" * 128),
        ("ünï/cødé", "_n__c_d_"),
    ],
)
def test_branch_normalization(branch: str, normalized: str) -> None:
    assert normalize_branch(branch) == normalized


@pytest.mark.parametrize(
    ("domain", "prefix", "image_name", "expected"),
    [
        ("r.io", "", "app", "r.io/app"),
        ("r.io", "team", "app", "r.io/team/app"),
        ("r.io", "team/", "/team/app", "r.io/team/app"),  # prefix not repeated
        ("r.io", "team", "other/app", "r.io/team/other/app"),
        ("docker.io", "", "app", "docker.io/library/app"),
        ("docker.io", "", "user/app", "docker.io/user/app"),
        ("r.io", "", "old.registry:5000/ns/app", "r.io/ns/app"),
    ],
)
def test_target_repository(
    domain: str, prefix: str, image_name: str, expected: str
) -> None:
    assert target_repository(domain, prefix, image_name) == expected


def test_references() -> None:
    assert str(parse_reference("busybox")) == "docker.io/library/busybox"
    assert parse_reference("localhost:5000/a/b:1.0").tag == "1.0"
    assert repository_path("registry.example.com:5000/ns/app:1") == "ns/app"
    assert repository_path("library/busybox:latest") == "busybox"


PIPELINE = """\
version: '1.0'
steps:
  build:
    type: build
    image_name: My-App
    tags: [Main, "${{CF_SHORT_REVISION}}"]
    retry: {maxAttempts: 4, delay: 2, exponentialFactor: 3}
  par:
    type: parallel
    timeout: 10m
    steps:
      inherits:
        type: push
        candidate: ${{build}}
        registry: hub
        image_name: me/app
      own:
        type: push
        candidate: ${{build}}
        timeout: 30s
      none:
        type: push
        candidate: ${{build}}
        timeout: null
"""
CATALOG = Catalog(
    (
        IntegrationInfo(
            "local", "docker", "127.0.0.1:5000", prefix="team", default=True
        ),
        IntegrationInfo("hub", "docker", "docker.io"),
    )
)


def test_plan_options_and_resolution() -> None:
    pipeline, source = load_pipeline_text(PIPELINE)
    assert [p for p in check(pipeline, source, CATALOG) if p.severity == "error"] == []
    plan = translate(pipeline, "codefresh.yml")
    steps = {s.name: s for s in plan.all_steps()}
    assert steps["build"].retry.delays == (2, 6, 18)
    assert (steps["inherits"].timeout, steps["own"].timeout, steps["none"].timeout) == (
        600,
        30,
        None,
    )

    scope = Scope({"CF_SHORT_REVISION": "abc1234", "CF_BRANCH_TAG_NORMALIZED": "main"})
    build = resolve_build("build", pipeline.steps["build"], scope, CATALOG, Path("."))  # type: ignore[arg-type]
    assert build.tags == ("main", "abc1234")  # tag_policy lowercase
    assert build.push is not None
    assert build.push.references() == [
        "127.0.0.1:5000/team/my-app:main",
        "127.0.0.1:5000/team/my-app:abc1234",
    ]
    builds = {"build": build.image_name}
    par = pipeline.steps["par"]
    push = resolve_push("inherits", par.steps["inherits"], scope, CATALOG, builds)  # type: ignore[union-attr]
    assert push.references() == ["docker.io/me/app:latest"]
    own = resolve_push("own", par.steps["own"], scope, CATALOG, builds)  # type: ignore[union-attr]
    assert own.references() == ["127.0.0.1:5000/team/my-app:latest"]


def test_cycles_are_reported() -> None:
    text = (
        "version: '1.0'\nmode: parallel\nsteps:\n"
        "  a:\n    type: push\n    candidate: x\n    registry: local\n    when: {steps: [{name: b}]}\n"
        "  b:\n    type: push\n    candidate: x\n    registry: local\n    when: {steps: [{name: a}]}\n"
    )
    pipeline, source = load_pipeline_text(text, "c.yml")
    messages = [str(p) for p in check(pipeline, source, CATALOG)]
    assert any("when.steps form a cycle: a -> b -> a" in m for m in messages), messages
