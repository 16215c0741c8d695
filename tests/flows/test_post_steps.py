"""Table-driven tests of post-step operations as data (semantics §10).

YAML in, operations (or validation messages) out; nothing here needs Prefect.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flows.loader import load_pipeline_text
from flows.model import StepBase
from flows.post_steps import (
    AnnotationValue,
    Operation,
    check_operations,
    operation_problems,
    scalar,
    step_operations,
)
from flows.variables import Scope

PUSH = "type: push\ncandidate: my/app:main\n"
BUILD = "type: build\nimage_name: my/app\n"
SCOPE = Scope(
    {"CF_BRANCH": "main", "CF_BUILD_ID": "build-1", "COV": "85", "FLAG": "false"},
    {"b": {"name": "b", "type": "build", "result": "success", "imageId": "sha256:b"}},
    {"b": "my/app:main"},
)


def step(body: str) -> StepBase:
    text = 'version: "1.0"\nsteps:\n  s:\n' + textwrap.indent(body, "    ")
    pipeline, _ = load_pipeline_text(text)
    spec = pipeline.steps["s"]
    assert isinstance(spec, StepBase)
    return spec


def plan(
    body: str,
    result: str = "success",
    *,
    image_id: str | None = "sha256:own",
    pipeline: str = "proj/pipe",
    base_dir: Path | None = None,
) -> list[Operation]:
    return step_operations(
        step(body),
        result,
        SCOPE.with_step("s"),
        build_id="build-1",
        step_image_id=image_id,
        pipeline_name=pipeline,
        base_dir=base_dir,
    )


def one_value(entry: str, *, base_dir: Path | None = None) -> Operation:
    body = f"{PUSH}on_success:\n  annotations:\n    set:\n      - annotations:\n          - {entry}\n"
    [operation] = plan(body, base_dir=base_dir)
    return operation


SCALARS = [
    ("pending", "pending"),
    ("70", 70),
    ("-3", -3),
    ("10.45", 10.45),
    ("1.10", "1.10"),  # would not print back as written: a version, not 1.1
    ("007", "007"),
    ("85%", "85%"),
    ("1e3", "1e3"),
    ("true", True),
    ("False", False),
    ("yes", "yes"),  # YAML 1.2, as Codefresh reads it
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), SCALARS)
def test_scalar(text: str, expected: AnnotationValue) -> None:
    value = scalar(text)
    assert value == expected
    assert type(value) is type(expected)


VALUES: list[tuple[str, AnnotationValue]] = [
    ("qa: pending", "pending"),
    ("coverage: 70", 70),
    ("ratio: 10.45", 10.45),
    ("percent: '85%'", "85%"),
    ("ok: true", True),
    ("text: Hello World", "Hello World"),
    ("cov: ${{COV}}", 85),  # substituted first, then read as YAML would
    ("flag: ${{FLAG}}", False),
    ("branch: ${{CF_BRANCH}}-x", "main-x"),
    ("msg: ${{CF_COMMIT_MESSAGE}}", "${{CF_COMMIT_MESSAGE}}"),  # Decisions 2
    ("some_flag", True),  # bare key
    ("empty:", True),
    ("is_main: {evaluate: \"'${{CF_BRANCH}}' == 'main'\"}", True),
    ("is_dev: {evaluate: \"'${{CF_BRANCH}}' == 'dev'\"}", False),
    ("sum: {evaluate: '1 + 2'}", 3),
    ("quarter: {evaluate: '1 / 4'}", 0.25),
    ("up: {evaluate: 'upper(\"${{CF_BRANCH}}\")'}", "MAIN"),
    ("var: {evaluate: 'Variable(\"COV\")'}", "85"),
    ("step: {evaluate: 'steps.b.result'}", "success"),
]


@pytest.mark.parametrize(("entry", "expected"), VALUES)
def test_values(entry: str, expected: AnnotationValue) -> None:
    operation = one_value(entry)
    assert operation.error is None
    assert operation.value == expected
    assert type(operation.value) is type(expected)


EVALUATE_ERRORS = [
    ("bad: {evaluate: \"'a' == 1\"}", "evaluate \"'a' == 1\" failed"),
    ("bad: {evaluate: '1 === 1'}", "use '=='"),
    ("bad: {evaluate: '${{NOPE}} == 1'}", "failed"),
    ("bad: {evaluate: 'null'}", "gave null"),
    ("bad: {evaluate: '1 / 0'}", "division by zero"),
]


@pytest.mark.parametrize(("entry", "message"), EVALUATE_ERRORS)
def test_evaluate_errors_fail_the_operation_only(entry: str, message: str) -> None:
    operation = one_value(entry)
    assert operation.error is not None
    assert message in operation.error
    assert operation.value is None
    assert "failed" not in operation.describe()  # the store adds that


def test_file_values(tmp_path: Path) -> None:
    (tmp_path / "report.txt").write_text("3 passed\n")
    (tmp_path / "big.txt").write_text("x" * 6000)
    (tmp_path / "bin.dat").write_bytes(b"\xff\xfe\x00")
    cases: list[tuple[str, AnnotationValue | None, str | None]] = [
        ("r: file:report.txt", "3 passed\n", None),
        (f"r: file:{tmp_path}/report.txt", "3 passed\n", None),
        ("r: file:missing.txt", "file:missing.txt", None),  # kept as written
        ("r: file:.", None, "cannot read"),
        ("r: file:big.txt", None, "larger than 5000 bytes"),
        ("r: file:bin.dat", None, "not UTF-8"),
    ]
    for entry, value, error in cases:
        operation = one_value(entry, base_dir=tmp_path)
        assert operation.value == value, entry
        assert (operation.error is None) == (error is None), entry
        assert error is None or error in str(operation.error), entry


ALL_HOOKS = f"""{BUILD}metadata:
  set:
    - own_meta: 1
annotations:
  set:
    - annotations: [own_ann]
on_success:
  annotations:
    set:
      - annotations: [succeeded]
on_fail:
  annotations:
    set:
      - annotations: [failed]
on_finish:
  annotations:
    set:
      - annotations: [finished]
"""
SELECTION = [
    ("success", ["own_meta", "own_ann", "succeeded", "finished"]),
    ("failure", ["failed", "finished"]),
    ("terminated", ["failed", "finished"]),
    ("skipped", []),
    ("pending", []),
]


@pytest.mark.parametrize(("result", "keys"), SELECTION)
def test_selection_by_result(result: str, keys: list[str]) -> None:
    assert [op.key for op in plan(ALL_HOOKS, result)] == keys


def test_origins_and_order() -> None:
    origins = [op.origin for op in plan(ALL_HOOKS)]
    assert origins == [
        "metadata.set",
        "annotations.set.0",
        "on_success.annotations.set.0",
        "on_finish.annotations.set.0",
    ]


TARGETS: list[tuple[str, dict[str, object], tuple[str, str] | str]] = [
    # annotations.set target fields, plan options, (type, id) or error text
    ("", {}, ("build", "build-1")),
    ("entity_type: build", {}, ("build", "build-1")),
    ("entity_id: other-build", {}, ("build", "other-build")),
    ("entity_type: pipeline", {}, ("pipeline", "proj/pipe")),
    ("entity_type: pipeline\nentity_id: p/q", {}, ("pipeline", "p/q")),
    ("entity_type: project", {}, ("project", "proj")),
    ("entity_type: project", {"pipeline": "solo"}, "names no project"),
    ("entity_type: image", {}, ("image", "sha256:own")),
    ("entity_type: image", {"image_id": None}, "no image to annotate"),
    ("entity_type: image\nentity_id: ${{b.imageId}}", {}, ("image", "sha256:b")),
    ("entity_id: ${{CF_BUILD_ID}}", {}, ("build", "build-1")),
    ("entity_id: ${{NOPE}}", {}, "refers to a variable that is not defined"),
    ("entity_id: ' '", {}, "is empty"),
]


@pytest.mark.parametrize(("fields", "options", "expected"), TARGETS)
def test_annotation_targets(
    fields: str, options: dict[str, object], expected: tuple[str, str] | str
) -> None:
    target = textwrap.indent(fields, "        ").lstrip() if fields else ""
    body = f"{PUSH}on_success:\n  annotations:\n    set:\n      - annotations: [k]\n"
    if target:
        body += f"        {target}\n"
    [operation] = plan(body, **options)  # type: ignore[arg-type]
    if isinstance(expected, str):
        assert operation.error is not None
        assert expected in operation.error
        assert operation.value is None
    else:
        assert operation.error is None
        assert (operation.entity_type, operation.entity_id) == expected
        assert operation.value is True


IMAGE_KEYS = [
    ("${{b.imageId}}", "sha256:b", None),
    ("${{steps.b.imageId}}", "sha256:b", None),
    ("${{b}}", "sha256:b", None),  # the build step's image, by ID
    ("sha256:literal", "sha256:literal", None),
    ("${{missing.imageId}}", "", "refers to a variable that is not defined"),
]


@pytest.mark.parametrize(("key", "entity_id", "error"), IMAGE_KEYS)
def test_metadata_image_keys(key: str, entity_id: str, error: str | None) -> None:
    body = f"{PUSH}on_success:\n  metadata:\n    set:\n      - '{key}':\n          - qa: pending\n          - CF_QUALITY: true\n"
    operations = plan(body)
    assert [op.key for op in operations] == ["qa", "CF_QUALITY"]
    for operation in operations:
        assert operation.entity_type == "image"
        assert operation.entity_id == entity_id
        assert (operation.error is None) == (error is None)
        assert error is None or error in str(operation.error)
    if error is None:
        assert [op.value for op in operations] == ["pending", True]


def test_build_step_metadata_annotates_its_own_image() -> None:
    body = f"{BUILD}metadata:\n  set:\n    - qa: pending\n    - tested\n"
    operations = plan(body, image_id="sha256:built")
    assert [(o.entity_type, o.entity_id, o.key, o.value) for o in operations] == [
        ("image", "sha256:built", "qa", "pending"),
        ("image", "sha256:built", "tested", True),
    ]


def test_unset_display_and_names() -> None:
    body = f"""{PUSH}on_finish:
  annotations:
    set:
      - entity_type: pipeline
        annotations:
          - coverage: 70
          - bad-name: 1
        display: coverage
    unset:
      - annotations: [old, also_old]
"""
    operations = plan(body, "failure")
    assert [(o.action, o.entity_type, o.key) for o in operations] == [
        ("set", "pipeline", "coverage"),
        ("set", "pipeline", "bad-name"),
        ("display", "pipeline", "coverage"),
        ("unset", "build", "old"),
        ("unset", "build", "also_old"),
    ]
    assert operations[1].error is not None
    assert "must match ^[A-Za-z0-9_]+$" in operations[1].error
    assert all(o.error is None for o in operations if o.key != "bad-name")
    assert operations[0].step == "s"
    assert operations[0].build_id == "build-1"


def test_steps_without_operations_plan_nothing() -> None:
    assert plan(PUSH) == []
    assert plan(BUILD) == []


CHECKS: list[tuple[str, list[tuple[tuple[str | int, ...], str, bool]]]] = [
    (
        "on_success:\n  annotations:\n    set:\n      - annotations:\n          - ok: 1\n          - bad-one: 2\n          - also.bad\n",
        [
            (
                ("on_success", "annotations", "set", 0, "annotations", 1, "bad-one"),
                "annotation name 'bad-one' must match",
                False,
            ),
            (
                ("on_success", "annotations", "set", 0, "annotations", 2),
                "annotation name 'also.bad'",
                False,
            ),
        ],
    ),
    (
        "on_fail:\n  annotations:\n    unset:\n      - annotations: [fine, not-fine]\n",
        [
            (
                ("on_fail", "annotations", "unset", 0, "annotations", 1),
                "'not-fine'",
                False,
            )
        ],
    ),
    (
        "on_finish:\n  metadata:\n    set:\n      - '${{b.imageId}}':\n          - ok: {evaluate: '1 === 1'}\n",
        [
            (
                (
                    "on_finish",
                    "metadata",
                    "set",
                    0,
                    "${{b.imageId}}",
                    0,
                    "ok",
                    "evaluate",
                ),
                "use '=='",
                False,
            )
        ],
    ),
    (
        "on_success:\n  annotations:\n    set:\n      - annotations: [a]\n        display: b\n",
        [
            (
                ("on_success", "annotations", "set", 0, "display"),
                "display 'b' is not one of the annotations set here",
                True,
            )
        ],
    ),
    (
        "on_success:\n  annotations:\n    set:\n      - annotations: [a]\n        display: a\n        entity_type: image\n",
        [],
    ),
]


@pytest.mark.parametrize(("body", "expected"), CHECKS)
def test_operation_problems(
    body: str, expected: list[tuple[tuple[str | int, ...], str, bool]]
) -> None:
    problems = operation_problems("s", step(PUSH + body))
    assert len(problems) == len(expected), problems
    for problem, (path, text, warning) in zip(problems, expected, strict=True):
        assert problem.path == path
        assert text in problem.message
        assert problem.message.startswith("step 's', `")
        assert problem.warning is warning


def test_check_operations_on_build_fields_and_parallel_images() -> None:
    build = step(f"{BUILD}metadata:\n  set:\n    - bad-key: 1\n")
    [message] = check_operations("s", build)
    assert "`metadata.set.0.bad-key`" in message
    parallel = step(
        f"type: parallel\nsteps:\n  c:\n    {PUSH.replace(chr(10), chr(10) + '    ')}\n"
        "on_success:\n  annotations:\n    set:\n      - entity_type: image\n        annotations: [x]\n"
    )
    [warning] = check_operations("s", parallel)
    assert warning.startswith("warning: ")
    assert "a parallel step has none" in warning
