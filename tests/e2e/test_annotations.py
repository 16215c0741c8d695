"""Annotations and image metadata kept across runs (issue 3, item 6).

Against the session's real Prefect server: one "run" applies post-step
operations, a later one reads them back through a fresh store read, and
`freshflow annotations` shows them.  Every test removes what it stored.
"""

from __future__ import annotations

import json
import logging
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect.runtime import flow_run
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_CLIENT_MAX_RETRIES,
    temporary_settings,
)
from typer.testing import CliRunner

from flows import annotations_store as store
from flows.cli_annotations import annotations_app
from flows.loader import load_pipeline_text
from flows.model import EntityType, StepBase
from flows.post_steps import Operation, step_operations
from flows.post_steps_runtime import run_post_step_operations
from flows.report import StepOutcome
from flows.variables import Scope

pytestmark = pytest.mark.usefixtures("prefect_server")

STEP = """\
type: build
image_name: my/app
metadata:
  set:
    - qa: pending
annotations:
  set:
    - annotations:
        - built: true
on_success:
  metadata:
    set:
      - '${{s.imageId}}':
          - coverage: 85%
          - CF_QUALITY: true
  annotations:
    set:
      - entity_type: pipeline
        annotations:
          - last_branch: ${{CF_BRANCH}}
          - tests: 42
          - is_main: {evaluate: "'${{CF_BRANCH}}' == 'main'"}
          - report: file:report.txt
        display: tests
on_finish:
  annotations:
    set:
      - annotations:
          - finished
    unset:
      - entity_type: pipeline
        annotations: [stale]
"""


class Run:
    """Ids of one simulated run, unique per test so tests never collide."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:12]
        self.build_id = f"build-{tag}"
        self.image_id = f"sha256:{tag}"
        self.pipeline = f"proj-{tag}/pipe"

    def scope(self) -> Scope:
        members = {"name": "s", "type": "build", "result": "success"}
        return Scope(
            {"CF_BRANCH": "main", "CF_BUILD_ID": self.build_id},
            {"s": {**members, "imageId": self.image_id}},
        ).with_step("s")


class Records(logging.Handler):
    """Keeps the log records it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


def spec(body: str = STEP) -> StepBase:
    text = 'version: "1.0"\nsteps:\n  s:\n' + textwrap.indent(body, "    ")
    pipeline, _ = load_pipeline_text(text)
    step = pipeline.steps["s"]
    assert isinstance(step, StepBase)
    return step


@pytest.fixture
def stored() -> Iterator[Callable[[EntityType, str], None]]:
    """Remember entities a test annotates; remove them at its end."""
    entities: list[tuple[EntityType, str]] = []

    def remember(entity_type: EntityType, entity_id: str) -> None:
        entities.append((entity_type, entity_id))

    yield remember
    for entity_type, entity_id in entities:
        store.delete(entity_type, entity_id)


def plan(run: Run, base_dir: Path, result: str = "success") -> list[Operation]:
    return step_operations(
        spec(),
        result,
        run.scope(),
        build_id=run.build_id,
        step_image_id=run.image_id,
        pipeline_name=run.pipeline,
        base_dir=base_dir,
    )


def remember_all(run: Run, stored: Callable[[EntityType, str], None]) -> None:
    stored("build", run.build_id)
    stored("image", run.image_id)
    stored("pipeline", run.pipeline)


def test_a_later_run_reads_what_a_run_stored(
    tmp_path: Path, stored: Callable[[EntityType, str], None]
) -> None:
    (tmp_path / "report.txt").write_text("42 passed\n")
    run = Run()
    remember_all(run, stored)
    store.apply([Operation("set", "pipeline", run.pipeline, "stale", "old")])

    assert store.apply(plan(run, tmp_path)) == []

    # A later run: nothing is cached, every read goes to the server.
    assert store.read("image", run.image_id) == {
        "qa": "pending",
        "coverage": "85%",
        "CF_QUALITY": True,
    }
    assert store.read("build", run.build_id) == {"built": True, "finished": True}
    pipeline = store.read_entity("pipeline", run.pipeline)
    assert pipeline is not None
    assert pipeline.values() == {
        "last_branch": "main",
        "tests": 42,
        "is_main": True,
        "report": "42 passed\n",
    }
    assert pipeline.display == "tests"
    assert pipeline.annotations["tests"].type == "number"
    assert pipeline.annotations["tests"].set_by == run.build_id
    image = store.read_entity("image", run.image_id)
    assert image is not None
    assert image.annotations["coverage"].type == "percentage"
    listed = {(r.entity_type, r.entity_id) for r in store.list_entities()}
    assert {("build", run.build_id), ("pipeline", run.pipeline)} <= listed


def test_unset_removes_and_an_empty_entity_disappears(
    stored: Callable[[EntityType, str], None],
) -> None:
    run = Run()
    stored("pipeline", run.pipeline)
    first = [
        Operation("set", "pipeline", run.pipeline, "a", 1),
        Operation("set", "pipeline", run.pipeline, "b", "two"),
        Operation("display", "pipeline", run.pipeline, "a"),
    ]
    assert store.apply(first) == []

    assert store.apply([Operation("unset", "pipeline", run.pipeline, "a")]) == []
    record = store.read_entity("pipeline", run.pipeline)
    assert record is not None
    assert record.values() == {"b": "two"}
    assert record.display is None  # its annotation is gone

    assert store.apply([Operation("unset", "pipeline", run.pipeline, "b")]) == []
    assert store.read_entity("pipeline", run.pipeline) is None
    assert store.delete("pipeline", run.pipeline) is False


def test_failures_are_reported_and_the_rest_is_stored(
    stored: Callable[[EntityType, str], None],
) -> None:
    run = Run()
    stored("build", run.build_id)
    operations = [
        Operation("set", "build", run.build_id, "ok", 1),
        Operation("set", "build", run.build_id, "huge", "x" * 6000),
        Operation("set", "build", run.build_id, "bad", error="evaluate '1' failed"),
    ]

    errors = store.apply(operations)

    assert len(errors) == 2
    assert "more than the 5000 a Prefect variable holds" in errors[0]
    assert errors[1].endswith("failed: evaluate '1' failed")
    assert store.read("build", run.build_id) == {"ok": 1}


def test_an_unreachable_store_never_raises_from_apply() -> None:
    operation = Operation("set", "build", "b", "k", 1)
    settings = {
        PREFECT_API_URL: "http://127.0.0.1:9/api",
        PREFECT_CLIENT_MAX_RETRIES: 0,
    }
    with temporary_settings(updates=settings):
        [error] = store.apply([operation])
        assert "the annotation store (Prefect variables) failed" in error
        result = CliRunner().invoke(annotations_app, ["get", "build", "b"])
    assert result.exit_code == 4
    assert "PREFECT_API_URL" in result.stderr


def test_cli_get_and_list(stored: Callable[[EntityType, str], None]) -> None:
    run = Run()
    image_id = f"sha256:{uuid.uuid4().hex}{uuid.uuid4().hex}"
    stored("build", run.build_id)
    stored("image", image_id)
    store.apply(
        [
            Operation("set", "image", image_id, "CF_QUALITY", True),
            Operation("set", "build", run.build_id, "coverage", 70),
            Operation("set", "build", run.build_id, "url", "https://ci.example/1"),
            Operation("display", "build", run.build_id, "coverage"),
        ]
    )
    runner = CliRunner()

    as_json = runner.invoke(annotations_app, ["get", "build", run.build_id, "--json"])
    table = runner.invoke(annotations_app, ["get", "build", run.build_id])
    listed = runner.invoke(annotations_app, ["list", "--json"])
    missing = runner.invoke(annotations_app, ["get", "image", "sha256:none"])
    short = runner.invoke(annotations_app, ["get", "image", image_id[7:19], "--json"])
    wrong = runner.invoke(annotations_app, ["get", "team", "x"])

    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.stdout)
    assert document["entity_type"] == "build"
    assert document["entity_id"] == run.build_id
    assert document["display"] == "coverage"
    assert document["annotations"]["coverage"]["value"] == 70
    assert document["annotations"]["url"]["type"] == "link"
    assert table.exit_code == 0
    assert "(display)" in table.stdout
    assert "│ 70 " in table.stdout
    assert "│ link " in table.stdout
    entities = json.loads(listed.stdout)
    assert any(e["entity_id"] == run.build_id for e in entities)
    assert missing.exit_code == 0
    assert json.loads(short.stdout)["entity_id"] == image_id
    assert "has no annotations" in missing.stdout
    assert wrong.exit_code == 2


def test_inside_a_flow_run_logs_and_publishes_an_artifact(
    tmp_path: Path, stored: Callable[[EntityType, str], None]
) -> None:
    (tmp_path / "report.txt").write_text("ok\n")
    run = Run()
    remember_all(run, stored)
    outcome = StepOutcome("s", "build", "success", image_id=run.image_id)
    failing = spec(
        "type: push\ncandidate: x\non_fail:\n  annotations:\n    set:\n"
        "      - annotations:\n          - bad: {evaluate: \"'a' == 1\"}\n"
    )
    handler = Records()

    @flow(persist_result=False)
    def pipeline() -> str:
        run_post_step_operations(
            spec(), outcome, run.scope(), run.build_id, run.pipeline, base_dir=tmp_path
        )
        failed = StepOutcome("p", "push", "failure")
        run_post_step_operations(failing, failed, run.scope(), run.build_id, "x")
        return str(flow_run.get_id())

    logging.getLogger("prefect.flow_runs").addHandler(handler)
    try:
        run_id = pipeline()
    finally:
        logging.getLogger("prefect.flow_runs").removeHandler(handler)

    infos = handler.messages(logging.INFO)
    warnings = handler.messages(logging.WARNING)
    assert f"step s: set annotation tests=42 on pipeline {run.pipeline!r}" in infos
    assert len([m for m in infos if m.startswith("step s: ")]) == 11
    assert len(warnings) == 1
    assert "step p: set annotation bad" in warnings[0]
    assert "failed: evaluate" in warnings[0]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[store.ARTIFACT_KEY]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(run_id)]),
            )
        )
    assert len(artifacts) == 1
    markdown = str(artifacts[0].data)
    assert "| s | pipeline |" in markdown
    assert "| set | CF_QUALITY | true |" in markdown
    assert "bad" not in markdown  # only what was applied
