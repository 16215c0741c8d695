"""Checks of a step's post-step operations that `freshflow validate` reports.

Annotation names follow Codefresh's validator (`^[A-Za-z0-9_]+$`), every
`{evaluate: ...}` must parse, and a few shapes that can only fail at run time
are warned about.  Each problem carries its YAML path below the step, so
`flows.validation` can put a file location on it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from flows.conditions import validate_expression
from flows.model import (
    AnnotationOperation,
    BuildStep,
    EvaluateValue,
    MetadataEntry,
    PostStepOperations,
    PushStep,
    StepBase,
)

ANNOTATION_NAME: Final = re.compile(r"^[A-Za-z0-9_]+$")

_Path = tuple[str | int, ...]


@dataclass(frozen=True)
class OperationProblem:
    """One problem in a step's post-step operations.

    `path` is below the step (`("on_success", "annotations", "set", 0, ...)`);
    it ends at the key or entry the problem is about.
    """

    path: _Path
    message: str
    warning: bool = False


def name_error(name: str) -> str | None:
    """Why `name` cannot be an annotation name, or None when it can."""
    if ANNOTATION_NAME.match(name):
        return None
    return (
        f"annotation name {name!r} must match ^[A-Za-z0-9_]+$ "
        "(letters, digits and _ only)"
    )


def operation_problems(name: str, step: StepBase) -> list[OperationProblem]:
    """Every problem in the post-step operations of step `name`."""
    checker = _Checker(name, step)
    for field in ("on_success", "on_fail", "on_finish"):
        operations: PostStepOperations | None = getattr(step, field)
        if operations is not None:
            checker.post_step((field,), operations)
    if isinstance(step, BuildStep):
        if step.metadata is not None:
            checker.entries(("metadata", "set"), step.metadata.set)
        if step.annotations is not None:
            checker.annotations(("annotations",), step.annotations)
    return checker.problems


def check_operations(name: str, step: StepBase) -> list[str]:
    """`operation_problems` as messages; warnings start with `warning: `."""
    return [
        f"warning: {p.message}" if p.warning else p.message
        for p in operation_problems(name, step)
    ]


def _dotted(path: _Path) -> str:
    return ".".join(str(part) for part in path)


class _Checker:
    def __init__(self, name: str, step: StepBase) -> None:
        self.name = name
        self.step = step
        self.problems: list[OperationProblem] = []

    def add(self, path: _Path, message: str, *, warning: bool = False) -> None:
        text = f"step {self.name!r}, `{_dotted(path)}`: {message}"
        self.problems.append(OperationProblem(path, text, warning))

    def post_step(self, path: _Path, operations: PostStepOperations) -> None:
        if operations.metadata is not None:
            for index, images in enumerate(operations.metadata.set):
                for key, entries in images.items():
                    where = (*path, "metadata", "set", index, key)
                    if not key.strip():
                        self.add(where, "the image key is empty; use ${{STEP.imageId}}")
                    self.entries(where, entries)
        if operations.annotations is not None:
            self.annotations((*path, "annotations"), operations.annotations)

    def annotations(self, path: _Path, operation: AnnotationOperation) -> None:
        for index, target in enumerate(operation.set):
            where = (*path, "set", index)
            self.entries((*where, "annotations"), target.annotations)
            if target.display is not None:
                self.display(where, target.display, target.annotations)
            if target.entity_type == "image" and target.entity_id is None:
                self.image_target(where)
        for index, unset in enumerate(operation.unset):
            where = (*path, "unset", index)
            for position, name in enumerate(unset.annotations):
                self.name_check((*where, "annotations", position), name)
            if unset.entity_type == "image" and unset.entity_id is None:
                self.image_target(where)

    def entries(self, path: _Path, entries: Sequence[MetadataEntry]) -> None:
        for position, entry in enumerate(entries):
            if isinstance(entry, str):
                self.name_check((*path, position), entry)
                continue
            for key, value in entry.items():
                self.name_check((*path, position, key), key)
                if isinstance(value, EvaluateValue):
                    error = validate_expression(value.evaluate)
                    if error is not None:
                        self.add((*path, position, key, "evaluate"), error)

    def name_check(self, path: _Path, name: str) -> None:
        error = name_error(name)
        if error is not None:
            self.add(path, error)

    def display(
        self, path: _Path, display: str, entries: Sequence[MetadataEntry]
    ) -> None:
        names: set[str] = set()
        for entry in entries:
            names.update([entry] if isinstance(entry, str) else entry)
        self.name_check((*path, "display"), display)
        if display not in names:
            self.add(
                (*path, "display"),
                f"display {display!r} is not one of the annotations set here; "
                "the build row shows it only once it is set",
                warning=True,
            )

    def image_target(self, path: _Path) -> None:
        if isinstance(self.step, BuildStep | PushStep):
            return
        self.add(
            (*path, "entity_type"),
            f"entity_type image without entity_id names the step's image, but "
            f"a {self.step.type} step has none; set entity_id",
            warning=True,
        )
