"""Post-step operations (`on_success`, `on_fail`, `on_finish`) as plain data.

When a step ends, its `metadata` and `annotations` operations become a list
of `Operation`s: one annotation set or unset, or the `display` choice, on one
entity, with every value resolved (semantics §10, Decisions 14).  Image
metadata is kept as annotations of the image entity.  Nothing here touches
Prefect: `flows.annotations_store` applies the list and
`flows.post_steps_runtime` logs it.

An operation that cannot be resolved (an expression that fails, an entity
nobody can name) carries an `error` instead of a value; it is logged as failed
and is never raised, so it never changes the build status.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from flows.errors import ExpressionError
from flows.expressions import evaluate
from flows.model import (
    AnnotationOperation,
    BuildMetadata,
    BuildStep,
    EntityType,
    EvaluateValue,
    MetadataEntry,
    MetadataValue,
    PostStepOperations,
    StepBase,
)
from flows.post_steps_check import (
    ANNOTATION_NAME,
    OperationProblem,
    check_operations,
    name_error,
    operation_problems,
)
from flows.variables import VARIABLE, Scope

__all__ = [
    "ANNOTATION_NAME",
    "AnnotationValue",
    "Operation",
    "OperationProblem",
    "check_operations",
    "operation_problems",
    "plan_operations",
    "scalar",
    "step_operations",
]

Action = Literal["set", "unset", "display"]
AnnotationValue = str | int | float | bool

# A Prefect variable holds at most 5000 characters of JSON, so a bigger file
# could never be stored; it is refused before it is read whole.
MAX_FILE_BYTES: Final = 5000
_FAILED: Final = frozenset({"failure", "terminated"})
_FINISHED: Final = frozenset({"success", "failure", "terminated"})
_INT: Final = re.compile(r"^-?(0|[1-9][0-9]*)$")
_FLOAT: Final = re.compile(r"^-?[0-9]*\.[0-9]+$")
_STEP_IMAGE: Final = re.compile(r"^\$\{\{\s*([^{}\s.]+)\s*\}\}$")


@dataclass(frozen=True)
class Operation:
    """One annotation to set or unset, or the one to display, on one entity."""

    action: Action
    entity_type: EntityType
    entity_id: str
    key: str
    value: AnnotationValue | None = None
    origin: str = ""
    step: str = ""
    build_id: str = ""
    error: str | None = None

    def describe(self) -> str:
        """A log line's worth: what is done to which entity."""
        target = f"{self.entity_type} {self.entity_id or '?'!r}"
        if self.action == "set":
            return f"set annotation {self.key}={_shown(self.value)} on {target}"
        if self.action == "unset":
            return f"unset annotation {self.key} on {target}"
        return f"display annotation {self.key} on {target}"


def _shown(value: AnnotationValue | None, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else f"{text[: width - 3]}..."


def scalar(text: str) -> AnnotationValue:
    """Read YAML text back as a boolean or number when it is written as one.

    Only text that a number or boolean prints back exactly is converted, so
    `85%`, `1.10` or `007` stay text (the YAML source keeps no quoting).
    """
    if text in ("true", "True", "TRUE", "false", "False", "FALSE"):
        return text.lower() == "true"
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text) and repr(float(text)) == text:
        return float(text)
    return text


def step_operations(
    spec: object,
    outcome_result: str,
    scope: Scope,
    *,
    build_id: str,
    step_image_id: str | None,
    pipeline_name: str,
    base_dir: Path | None = None,
    workflow_result: str = "running",
) -> list[Operation]:
    """`plan_operations` for a step model: its on_* fields and build fields."""
    if not isinstance(spec, StepBase):
        return []
    build = spec if isinstance(spec, BuildStep) else None
    return plan_operations(
        spec.on_success,
        spec.on_fail,
        spec.on_finish,
        outcome_result,
        scope,
        build_id=build_id,
        step_image_id=step_image_id,
        pipeline_name=pipeline_name,
        build_metadata=build.metadata if build else None,
        build_annotations=build.annotations if build else None,
        base_dir=base_dir,
        workflow_result=workflow_result,
    )


def plan_operations(
    ops_success: PostStepOperations | None,
    ops_fail: PostStepOperations | None,
    ops_finish: PostStepOperations | None,
    outcome_result: str,
    scope: Scope,
    *,
    build_id: str,
    step_image_id: str | None,
    pipeline_name: str,
    build_metadata: BuildMetadata | None = None,
    build_annotations: AnnotationOperation | None = None,
    base_dir: Path | None = None,
    workflow_result: str = "running",
) -> list[Operation]:
    """What a step that ended with `outcome_result` sets and unsets, in order.

    A build step's own `metadata` / `annotations` come first and only after
    a success; then `on_success` or `on_fail`; then `on_finish` (after any
    result but `skipped`).  `scope` is the step's own (`Scope.with_step`);
    `file:` paths are relative to `base_dir` (default: the working directory).
    """
    planner = _Planner(
        scope, build_id, step_image_id, pipeline_name, base_dir, workflow_result
    )
    if outcome_result == "success":
        if build_metadata is not None:
            target = planner.image()
            planner.entries("metadata.set", "image", target, build_metadata.set)
        if build_annotations is not None:
            planner.annotations("annotations", build_annotations)
    chosen: list[tuple[str, PostStepOperations | None]] = []
    if outcome_result == "success":
        chosen.append(("on_success", ops_success))
    elif outcome_result in _FAILED:
        chosen.append(("on_fail", ops_fail))
    if outcome_result in _FINISHED:
        chosen.append(("on_finish", ops_finish))
    for where, operations in chosen:
        if operations is not None:
            planner.post_step(where, operations)
    return planner.operations


_Target = tuple[str, str | None]  # entity id, or "" and why there is none


class _Planner:
    def __init__(
        self,
        scope: Scope,
        build_id: str,
        image_id: str | None,
        pipeline_name: str,
        base_dir: Path | None,
        workflow_result: str,
    ) -> None:
        self.scope = scope
        self.build_id = build_id
        self.image_id = image_id
        self.pipeline_name = pipeline_name
        self.base_dir = base_dir or Path.cwd()
        self.variables = scope.expression_variables(workflow_result)
        self.step = scope.variables.get("CF_STEP_NAME", "")
        self.operations: list[Operation] = []

    def add(
        self,
        action: Action,
        entity_type: EntityType,
        target: _Target,
        key: str,
        origin: str,
        resolved: tuple[AnnotationValue | None, str | None] = (None, None),
    ) -> None:
        entity_id, target_error = target
        value, value_error = resolved
        error = target_error or name_error(key) or value_error
        self.operations.append(
            Operation(
                action,
                entity_type,
                entity_id,
                key,
                value=None if error else value,
                origin=origin,
                step=self.step,
                build_id=self.build_id,
                error=error,
            )
        )

    def post_step(self, where: str, operations: PostStepOperations) -> None:
        if operations.metadata is not None:
            for index, images in enumerate(operations.metadata.set):
                for key, entries in images.items():
                    origin = f"{where}.metadata.set.{index}"
                    self.entries(origin, "image", self.image_key(key), entries)
        if operations.annotations is not None:
            self.annotations(f"{where}.annotations", operations.annotations)

    def annotations(self, where: str, operation: AnnotationOperation) -> None:
        for index, target in enumerate(operation.set):
            origin = f"{where}.set.{index}"
            entity = self.entity(target.entity_type, target.entity_id)
            self.entries(origin, target.entity_type, entity, target.annotations)
            if target.display is not None:
                self.add("display", target.entity_type, entity, target.display, origin)
        for index, unset in enumerate(operation.unset):
            origin = f"{where}.unset.{index}"
            entity = self.entity(unset.entity_type, unset.entity_id)
            for name in unset.annotations:
                self.add("unset", unset.entity_type, entity, name, origin)

    def entries(
        self,
        origin: str,
        entity_type: EntityType,
        target: _Target,
        entries: Sequence[MetadataEntry],
    ) -> None:
        for entry in entries:
            items: Mapping[str, MetadataValue | None] = (
                {entry: None} if isinstance(entry, str) else entry
            )
            for key, raw in items.items():
                resolved = (None, None) if target[1] else self.value(raw)
                self.add("set", entity_type, target, key, origin, resolved)

    def value(
        self, raw: MetadataValue | None
    ) -> tuple[AnnotationValue | None, str | None]:
        if raw is None:
            return True, None
        if isinstance(raw, EvaluateValue):
            return self.evaluate(raw.evaluate)
        text = self.scope.substitute(raw)
        if text.startswith("file:"):
            return self.read_file(text)
        return scalar(text), None

    def evaluate(self, expression: str) -> tuple[AnnotationValue | None, str | None]:
        try:
            result = evaluate(self.scope.substitute(expression), self.variables)
        except ExpressionError as exc:
            return None, f"evaluate {expression!r} failed: {exc}"
        if isinstance(result, bool | str):
            return result, None
        if isinstance(result, float) and math.isfinite(result):
            return (int(result) if result.is_integer() else result), None
        kind = "null" if result is None else type(result).__name__
        return None, (
            f"evaluate {expression!r} gave {kind}; an annotation value must be "
            "text, a finite number or a boolean"
        )

    def read_file(self, text: str) -> tuple[AnnotationValue | None, str | None]:
        path = self.base_dir / text.removeprefix("file:")
        try:
            with path.open("rb") as stream:
                data = stream.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return text, None  # Codefresh keeps the value as written
        except OSError as exc:
            return None, f"cannot read {text!r}: {exc.strerror or exc}"
        if len(data) > MAX_FILE_BYTES:
            return None, (
                f"{text!r} is larger than {MAX_FILE_BYTES} bytes; annotations "
                "hold small text files only"
            )
        try:
            return data.decode("utf-8"), None
        except UnicodeDecodeError:
            return None, f"{text!r} is not UTF-8 text; annotations hold text files"

    def image(self) -> _Target:
        if self.image_id:
            return self.image_id, None
        return "", "no image to annotate: the step built or pushed none"

    def image_key(self, key: str) -> _Target:
        # `${{build_step}}` names the image by its ID, as `imageId` does, so
        # both spellings annotate one entity.
        match = _STEP_IMAGE.match(key.strip())
        members = self.scope.steps.get(match.group(1), {}) if match else {}
        if members.get("imageId"):
            return members["imageId"], None
        return self.resolved(key, "metadata image key")

    def entity(self, entity_type: EntityType, entity_id: str | None) -> _Target:
        if entity_id is not None:
            return self.resolved(entity_id, "entity_id")
        if entity_type == "build":
            return self.build_id, None
        if entity_type == "image":
            return self.image()
        if entity_type == "pipeline":
            return self.pipeline_name, None
        project, slash, _ = self.pipeline_name.partition("/")
        if slash and project:
            return project, None
        return "", (
            f"pipeline {self.pipeline_name!r} names no project "
            "(PROJECT/PIPELINE); set entity_id"
        )

    def resolved(self, text: str, what: str) -> _Target:
        value = self.scope.substitute(text).strip()
        if VARIABLE.search(value):
            return "", f"{what} {text!r} refers to a variable that is not defined"
        if not value:
            return "", f"{what} {text!r} is empty"
        return value, None
