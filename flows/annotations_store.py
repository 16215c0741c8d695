"""Annotations that outlive a run, kept as Prefect variables.

Each annotated entity is one variable on the Prefect server, so every worker
and every later run sees the same store, and the Prefect UI lists it under
Variables.  The variable's name is derived from the entity
(`freshflow-ann-<type>-<sha1(entity id)[:16]>`: variable names allow only
lowercase letters, digits, `-` and `_`); its JSON value holds the entity's
type and id, the `display` choice and the annotations with their type, the
build that set them and when::

    {"entity_type": "build", "entity_id": "…", "display": "coverage",
     "annotations": {"coverage": {"value": 70, "type": "number",
                                  "set_by": "…", "updated": "…"}}}

A variable holds at most 5000 characters of JSON; an annotation that would
overflow its entity is refused with a message.  Two runs that change one
entity at the same moment can lose one of the changes (the API has no
compare-and-set); within a run, operations are applied one step at a time.

`apply` never raises: a failure is a message for the log, and the build
status never depends on it (Decisions 14).  Inside a flow run, the
annotations set so far are also published as a markdown artifact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, cast, get_args
from uuid import UUID

from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    ArtifactUpdate,
    VariableCreate,
    VariableUpdate,
)
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists
from prefect.types import MAX_VARIABLE_VALUE_LENGTH

from flows.errors import FreshflowError
from flows.model import EntityType
from flows.post_steps import AnnotationValue, Operation

log = logging.getLogger(__name__)

PREFIX: Final = "freshflow-ann-"
TAGS: Final = ["freshflow", "freshflow-annotations"]
ARTIFACT_KEY: Final = "freshflow-annotations"
ENTITY_TYPES: Final[tuple[EntityType, ...]] = get_args(EntityType)
_PERCENT: Final = re.compile(r"^-?[0-9]+(\.[0-9]+)?%$")


class AnnotationStoreError(FreshflowError):
    """The annotation store (Prefect variables) cannot be read."""

    exit_code = 4


@dataclass(frozen=True)
class Annotation:
    """One stored annotation and where it came from."""

    value: AnnotationValue
    type: str
    set_by: str = ""
    updated: str = ""


@dataclass(frozen=True)
class EntityRecord:
    """Every annotation of one entity."""

    entity_type: EntityType
    entity_id: str
    annotations: dict[str, Annotation] = field(default_factory=dict)
    display: str | None = None

    def values(self) -> dict[str, AnnotationValue]:
        """Annotation name to value."""
        return {name: a.value for name, a in self.annotations.items()}

    def as_json(self) -> dict[str, object]:
        """The stored document (and the `annotations get --json` output)."""
        return {
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "display": self.display,
            "annotations": {
                name: {
                    "value": a.value,
                    "type": a.type,
                    "set_by": a.set_by,
                    "updated": a.updated,
                }
                for name, a in self.annotations.items()
            },
        }

    @classmethod
    def from_json(cls, document: object) -> EntityRecord | None:
        """Read a stored document; None when it is not one of ours."""
        if not isinstance(document, Mapping):
            return None
        kind, entity_id = document.get("entity_type"), document.get("entity_id")
        items = document.get("annotations")
        if kind not in ENTITY_TYPES or not isinstance(entity_id, str):
            return None
        if not isinstance(items, Mapping):
            return None
        annotations: dict[str, Annotation] = {}
        for name, item in items.items():
            value = item.get("value") if isinstance(item, Mapping) else None
            if isinstance(value, str | int | float | bool):
                annotations[str(name)] = Annotation(
                    value,
                    str(item.get("type", value_type(value))),
                    str(item.get("set_by", "")),
                    str(item.get("updated", "")),
                )
        display = document.get("display")
        return cls(
            cast(EntityType, kind),
            entity_id,
            annotations,
            display if isinstance(display, str) else None,
        )


@dataclass(frozen=True)
class Applied:
    """What became of one operation: `error` is None when it was applied."""

    operation: Operation
    error: str | None = None


def variable_name(entity_type: EntityType, entity_id: str) -> str:
    """The Prefect variable that holds the annotations of one entity."""
    digest = hashlib.sha1(entity_id.encode("utf-8"), usedforsecurity=False)
    return f"{PREFIX}{entity_type}-{digest.hexdigest()[:16]}"


def value_type(value: AnnotationValue) -> str:
    """The display type Codefresh gives a value (semantics §10.1)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if _PERCENT.match(value):
        return "percentage"
    if value.startswith(("http://", "https://")):
        return "link"
    return "string"


def apply(operations: Iterable[Operation]) -> list[str]:
    """Carry out `operations`; return one message per failed one."""
    return [
        f"{a.operation.describe()} failed: {a.error}"
        for a in apply_all(operations)
        if a.error
    ]


def apply_all(operations: Iterable[Operation]) -> list[Applied]:
    """Carry out `operations` in order, one variable write per entity."""
    ops = list(operations)
    errors: dict[int, str | None] = {i: op.error for i, op in enumerate(ops)}
    entities: dict[tuple[EntityType, str], list[int]] = {}
    for index, op in enumerate(ops):
        if op.error is None:
            entities.setdefault((op.entity_type, op.entity_id), []).append(index)
    for (entity_type, entity_id), indexes in entities.items():
        try:
            found = _apply_entity(entity_type, entity_id, [ops[i] for i in indexes])
        except Exception as exc:  # the store must never fail the build
            log.debug("annotation store failure", exc_info=True)
            reason = f"the annotation store (Prefect variables) failed: {exc}"
            found = [reason] * len(indexes)
        errors.update(zip(indexes, found, strict=True))
    results = [Applied(op, errors[i]) for i, op in enumerate(ops)]
    _publish([a.operation for a in results if a.error is None])
    return results


def _apply_entity(
    entity_type: EntityType, entity_id: str, ops: list[Operation]
) -> list[str | None]:
    name = variable_name(entity_type, entity_id)
    with get_client(sync_client=True) as client:
        for _ in range(2):  # a create can race another run's create
            current = client.read_variable_by_name(name)
            record = EntityRecord(entity_type, entity_id)
            if current is not None:
                stored = EntityRecord.from_json(current.value)
                if stored is None or stored.entity_id != entity_id:
                    why = f"variable {name!r} holds something else; delete it"
                    return [why] * len(ops)
                record = stored
            changed, errors = fold(record, ops)
            if changed == record:
                return errors
            if not changed.annotations and changed.display is None:
                client.delete_variable_by_name(name)
                return errors
            value = changed.as_json()
            if current is not None:
                client.update_variable(
                    VariableUpdate(name=name, value=value, tags=TAGS)
                )
                return errors
            try:
                client.create_variable(
                    VariableCreate(name=name, value=value, tags=TAGS)
                )
            except ObjectAlreadyExists:
                continue
            return errors
    return [f"variable {name!r} changed while it was written; try again"] * len(ops)


def fold(
    record: EntityRecord, ops: list[Operation], now: datetime | None = None
) -> tuple[EntityRecord, list[str | None]]:
    """`record` after `ops`, and per operation an error or None (pure)."""
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    errors: list[str | None] = []
    for op in ops:
        after = _one(record, op, stamp)
        size = len(_json(after.as_json()).encode("utf-8"))
        if size > MAX_VARIABLE_VALUE_LENGTH:
            errors.append(
                f"the annotations of {op.entity_type} {op.entity_id!r} would take "
                f"{size} characters, more than the {MAX_VARIABLE_VALUE_LENGTH} a "
                "Prefect variable holds; store a shorter value"
            )
            continue
        record = after
        errors.append(None)
    return record, errors


def _one(record: EntityRecord, op: Operation, stamp: str) -> EntityRecord:
    annotations = dict(record.annotations)
    if op.action == "set" and op.value is not None:
        annotations[op.key] = Annotation(
            op.value, value_type(op.value), op.build_id, stamp
        )
        return replace(record, annotations=annotations)
    if op.action == "unset":
        annotations.pop(op.key, None)
        display = None if record.display == op.key else record.display
        return replace(record, annotations=annotations, display=display)
    if op.action == "display":
        return replace(record, display=op.key)
    return record


def _json(document: object) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def read_entity(entity_type: EntityType, entity_id: str) -> EntityRecord | None:
    """The stored annotations of one entity; None when it has none."""
    name = variable_name(entity_type, entity_id)
    try:
        with get_client(sync_client=True) as client:
            variable = client.read_variable_by_name(name)
    except Exception as exc:
        raise _unreachable(exc) from exc
    if variable is None:
        return None
    record = EntityRecord.from_json(variable.value)
    return record if record is not None and record.entity_id == entity_id else None


def read(entity_type: EntityType, entity_id: str) -> dict[str, AnnotationValue]:
    """Annotation name to value for one entity (empty when it has none)."""
    record = read_entity(entity_type, entity_id)
    return record.values() if record else {}


def list_entities() -> list[EntityRecord]:
    """Every annotated entity, by type and id."""
    found: list[EntityRecord] = []
    try:
        with get_client(sync_client=True) as client:
            offset = 0
            while True:  # pages of the server's default (and maximum) size
                body = {
                    "variables": {"name": {"like_": f"{PREFIX}%"}},
                    "offset": offset,
                }
                page = client.request("POST", "/variables/filter", json=body).json()
                if not page:
                    break
                offset += len(page)
                for item in page:
                    record = EntityRecord.from_json(item.get("value"))
                    if record is not None:
                        found.append(record)
    except Exception as exc:
        raise _unreachable(exc) from exc
    return sorted(found, key=lambda r: (ENTITY_TYPES.index(r.entity_type), r.entity_id))


def delete(entity_type: EntityType, entity_id: str) -> bool:
    """Remove every annotation of one entity; False when it had none."""
    if read_entity(entity_type, entity_id) is None:
        return False
    try:
        with get_client(sync_client=True) as client:
            client.delete_variable_by_name(variable_name(entity_type, entity_id))
    except Exception as exc:
        raise _unreachable(exc) from exc
    return True


def _unreachable(exc: Exception) -> AnnotationStoreError:
    return AnnotationStoreError(
        f"the annotation store (Prefect variables) failed: {exc}; check "
        "PREFECT_API_URL and that the Prefect server is running"
    )


_runs: dict[UUID, tuple[UUID, list[Operation]]] = {}
_runs_lock = threading.Lock()


def _publish(applied: list[Operation]) -> None:
    """Keep this flow run's `freshflow-annotations` artifact up to date."""
    context = FlowRunContext.get()
    if not applied or context is None or context.flow_run is None:
        return
    run_id = context.flow_run.id
    try:
        with _runs_lock:
            artifact_id, done = _runs.get(run_id, (None, []))
            done = [*done, *applied]
            markdown = annotations_markdown(done)
            artifact_id = _write_artifact(artifact_id, markdown, len(done))
            _runs[run_id] = (artifact_id, done)
    except Exception as exc:  # an artifact is a view; it never fails the build
        log.warning("could not publish the annotations artifact: %s", exc)


def _write_artifact(artifact_id: UUID | None, markdown: str, count: int) -> UUID:
    description = f"{count} annotation change(s) made by this run"
    if artifact_id is None:
        created: Any = create_markdown_artifact(
            markdown, key=ARTIFACT_KEY, description=description
        )
        return cast(UUID, created)
    with get_client(sync_client=True) as client:
        update = ArtifactUpdate(data=markdown, description=description)
        client.update_artifact(artifact_id, update)
    return artifact_id


def annotations_markdown(operations: list[Operation]) -> str:
    """The annotation changes of a run as a markdown table."""
    lines = [
        "# Annotations",
        "",
        "| step | entity | id | change | annotation | value |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for op in operations:
        value = "" if op.action != "set" else _cell(_json(op.value), 80)
        lines.append(
            f"| {_cell(op.step)} | {op.entity_type} | {_cell(op.entity_id)} "
            f"| {op.action} | {op.key} | {value} |"
        )
    return "\n".join(lines)


def _cell(text: str, width: int = 200) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= width else f"{text[: width - 3]}..."
