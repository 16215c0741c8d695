"""`freshflow annotations ...`: read what post-step operations stored.

Annotations and image metadata live in Prefect variables (see
`flows.annotations_store`); these commands read them from the Prefect server
that `PREFECT_API_URL` names.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from flows.annotations_store import (
    AnnotationStoreError,
    EntityRecord,
    list_entities,
    read_entity,
)
from flows.post_steps import AnnotationValue

annotations_app = typer.Typer(
    help="Show the annotations and image metadata that pipelines stored.",
    no_args_is_help=True,
)

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


class EntityKind(StrEnum):
    """The entity types Codefresh annotates."""

    project = "project"
    pipeline = "pipeline"
    build = "build"
    image = "image"


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _fail(error: AnnotationStoreError) -> NoReturn:
    _err.print(f"error: {error}", markup=False)
    raise typer.Exit(error.exit_code)


def _text(value: AnnotationValue) -> str:
    # Booleans and numbers read as they were written in codefresh.yml.
    return value if isinstance(value, str) else json.dumps(value)


@annotations_app.command("list")
def list_command(as_json: JsonOpt = False) -> None:
    """List every annotated entity, with how many annotations it has."""
    try:
        records = list_entities()
    except AnnotationStoreError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps([r.as_json() for r in records], indent=2))
        return
    if not records:
        _out.print("no annotations stored yet", markup=False)
        return
    columns = ("type", "id", "annotations", "display")
    table = Table(*(Column(c, overflow="fold") for c in columns))
    for record in records:
        table.add_row(
            record.entity_type,
            Text(record.entity_id),
            str(len(record.annotations)),
            Text(_display(record)),
        )
    _out.print(table)


def _display(record: EntityRecord) -> str:
    shown = record.annotations.get(record.display or "")
    return f"{record.display}={_text(shown.value)}" if shown else ""


def _image_by_prefix(short_id: str) -> EntityRecord | None:
    """The one annotated image whose ID starts with `short_id`, if any."""
    digits = short_id.removeprefix("sha256:")
    if not digits:
        return None
    found = [
        r
        for r in list_entities()
        if r.entity_type == "image"
        and r.entity_id.removeprefix("sha256:").startswith(digits)
    ]
    if len(found) > 1:
        _err.print(
            f"error: {len(found)} annotated images start with {short_id!r}; "
            "give more of the ID",
            markup=False,
        )
        raise typer.Exit(2)
    return found[0] if found else None


@annotations_app.command("get")
def get_command(
    entity_type: Annotated[
        EntityKind, typer.Argument(help="project, pipeline, build or image.")
    ],
    entity_id: Annotated[
        str,
        typer.Argument(help="Build ID, image ID (sha256:...), pipeline or project."),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Show the annotations of one entity (an image also by a short ID)."""
    try:
        record = read_entity(entity_type.value, entity_id)
        if record is None and entity_type is EntityKind.image:
            record = _image_by_prefix(entity_id)
    except AnnotationStoreError as exc:
        _fail(exc)
    record = record or EntityRecord(entity_type.value, entity_id)
    if as_json:
        print(json.dumps(record.as_json(), indent=2, ensure_ascii=False))
        return
    if not record.annotations:
        _out.print(
            f"{entity_type.value} {entity_id!r} has no annotations", markup=False
        )
        return
    # Folded, never cut: a value is what the user came for.
    columns = ("annotation", "value", "type", "set by build", "updated (UTC)")
    table = Table(*(Column(c, overflow="fold") for c in columns))
    table.title = Text(f"{entity_type.value} {entity_id}")
    for name, annotation in record.annotations.items():
        label = f"{name} (display)" if name == record.display else name
        table.add_row(
            label,
            Text(_text(annotation.value)),
            annotation.type,
            annotation.set_by,
            annotation.updated.removesuffix("+00:00").replace("T", " "),
        )
    _out.print(table)
