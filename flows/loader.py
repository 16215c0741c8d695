"""Turn parsed YAML into a `Pipeline`, reporting every problem with its place.

Loading runs in three passes: shape checks on the raw data (a mapping where a
mapping belongs, legal and unique step names), Codefresh's compatibility
rewrites (legacy spellings, `arguments:` lifting), then one pydantic model per
step chosen by its `type`.  Problems are collected, not raised one by one, so
`freshflow validate` can list them all.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from flows.errors import PipelineFileError, Problem
from flows.model import (
    KNOWN_STEP_TYPES,
    BuildStep,
    OtherStep,
    ParallelStep,
    Pipeline,
    PushStep,
    Step,
)
from flows.yamlsource import Path_, Source, load_file, load_text

_LEGACY_KEYS = {
    "fail-fast": "fail_fast",
    "image-name": "image_name",
    "working-directory": "working_directory",
    "build-arguments": "build_arguments",
    "tag-policy": "tag_policy",
}
_ILLEGAL_NAME_CHARS = set(".#$[]")
_M = TypeVar("_M", bound=BaseModel)
_EXPECTED = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "greater_than": "greater than zero",
    "greater_than_equal": "at least 1",
}
_STEP_MODELS: dict[str, type[BaseModel]] = {
    "push": PushStep,
    "build": BuildStep,
    "parallel": ParallelStep,
}


def load_pipeline(path: Path) -> tuple[Pipeline, Source]:
    """Load and check the shape of a pipeline file (raises PipelineFileError)."""
    return build_pipeline(load_file(path))


def load_pipeline_text(
    text: str, name: str = "codefresh.yml"
) -> tuple[Pipeline, Source]:
    """Like `load_pipeline`, from text (used by tests and `--stdin`)."""
    return build_pipeline(load_text(text, name))


def build_pipeline(source: Source) -> tuple[Pipeline, Source]:
    """Build the model from parsed data; every problem found is raised at once."""
    problems: list[Problem] = []
    pipeline = _Builder(source, problems).pipeline()
    problems.sort(key=_order)
    if pipeline is None or any(p.severity == "error" for p in problems):
        raise PipelineFileError(problems)
    return pipeline, source


def _order(problem: Problem) -> tuple[int, int]:
    where = problem.location
    return (where.line, where.column) if where else (0, 0)


class _Builder:
    def __init__(self, source: Source, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        self.seen_names: dict[str, Path_] = {}

    def error(self, message: str, path: Path_, *, key: bool = False) -> None:
        where = self.source.where_key(path) if key else self.source.where(path)
        self.problems.append(Problem(message, where))

    def pipeline(self) -> Pipeline | None:
        data = self.source.data
        if not isinstance(data, dict):
            self.error(
                "the top level must be a mapping with `version` and `steps`, "
                f"not {_kind(data)}",
                (),
            )
            return None
        if "steps" not in data:
            self.error(
                "the pipeline needs `steps`: a mapping of step names to steps", ()
            )
            return None
        steps = self.steps(data.get("steps"), ("steps",), parent=None)
        root = self.validate(Pipeline, {**data, "steps": {}}, (), "the pipeline")
        if root is None or steps is None:
            return None
        return root.model_copy(update={"steps": steps})

    def steps(
        self, raw: object, path: Path_, parent: str | None
    ) -> dict[str, Step] | None:
        if raw is None:
            return None  # the model reports the missing field
        if not isinstance(raw, dict):
            hint = (
                "; write each step as `name:` followed by its fields"
                if isinstance(raw, list)
                else ""
            )
            where = f"parallel step {parent!r}" if parent else "the pipeline"
            self.error(
                f"`steps` of {where} must be a mapping, not {_kind(raw)}{hint}", path
            )
            return None
        if not raw:
            self.error("`steps` is empty; add at least one step", path)
        built: dict[str, Step] = {}
        for name, body in raw.items():
            step = self.step(name, body, (*path, name))
            if step is not None:
                built[name] = step
        return built

    def step(self, name: str, body: object, path: Path_) -> Step | None:
        self.check_name(name, path)
        if not isinstance(body, dict):
            self.error(
                f"step {name!r} must be a mapping of fields, not {_kind(body)}", path
            )
            return None
        body = self.compatible(name, dict(body), path)
        step_type = body.get("type", "freestyle")
        if not isinstance(step_type, str):
            self.error(f"`type` of step {name!r} must be text", (*path, "type"))
            return None
        model = _STEP_MODELS.get(step_type)
        if model is None:
            return OtherStep.model_validate(body)
        if model is ParallelStep:
            return self.parallel(name, body, path)
        step = self.validate(model, body, path, f"{step_type} step {name!r}")
        return step  # type: ignore[return-value]

    def parallel(self, name: str, body: dict[str, object], path: Path_) -> Step | None:
        children = self.steps(body.get("steps"), (*path, "steps"), parent=name)
        shell = self.validate(
            ParallelStep, {**body, "steps": {}}, path, f"parallel step {name!r}"
        )
        if shell is None or children is None:
            return None
        for child_name, child in children.items():
            if child.type == "pending-approval":
                self.error(
                    f"step {child_name!r}: a pending-approval step cannot run inside "
                    "a parallel step; move it out of "
                    f"{name!r}",
                    (*path, "steps", child_name),
                )
        return shell.model_copy(update={"steps": children})

    def check_name(self, name: str, path: Path_) -> None:
        bad = sorted(_ILLEGAL_NAME_CHARS & set(name))
        if bad:
            self.error(
                f"step name {name!r} contains {''.join(bad)!r}; step names may not "
                "contain any of . # $ [ ]",
                path,
                key=True,
            )
        if len(name) > 150:
            self.error(
                f"step name {name[:40]!r}... is longer than 150 characters",
                path,
                key=True,
            )
        first = self.seen_names.get(name)
        if first is not None:
            where = self.source.where_key(first)
            self.error(
                f"step name {name!r} is used twice (first at {where}); "
                "step names must be unique across the pipeline, parallel children included",
                path,
                key=True,
            )
        else:
            self.seen_names[name] = path

    def compatible(
        self, name: str, body: dict[str, object], path: Path_
    ) -> dict[str, object]:
        """Apply Codefresh's legacy spellings and lift `arguments:` (Decisions 15)."""
        step_type = body.get("type", "freestyle")
        arguments = body.get("arguments")
        if isinstance(arguments, dict) and step_type in KNOWN_STEP_TYPES:
            del body["arguments"]
            for key, value in arguments.items():
                if key in body:
                    self.error(
                        f"step {name!r} sets {key!r} both directly and under "
                        "`arguments:`; keep one",
                        (*path, "arguments", key),
                        key=True,
                    )
                    continue
                body[key] = value
                self.move((*path, "arguments", key), (*path, key))
        for legacy, modern in _LEGACY_KEYS.items():
            if legacy not in body:
                continue
            if modern in body:
                self.error(
                    f"step {name!r} sets both {legacy!r} and {modern!r}; keep {modern!r}",
                    (*path, legacy),
                    key=True,
                )
                continue
            body[modern] = body.pop(legacy)
            self.move((*path, legacy), (*path, modern))
        return body

    def move(self, old: Path_, new: Path_) -> None:
        for table in (self.source.positions, self.source.key_positions):
            for key in [k for k in table if k[: len(old)] == old]:
                table[(*new, *key[len(old) :])] = table[key]

    def validate(
        self, model: type[_M], data: dict[str, object], path: Path_, what: str
    ) -> _M | None:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for message, where, at_key in _translate(exc, model, data, path, what):
                self.error(message, where, key=at_key)
            return None


def _translate(
    exc: ValidationError,
    model: type[BaseModel],
    data: dict[str, object],
    path: Path_,
    what: str,
) -> Iterator[tuple[str, Path_, bool]]:
    reported: set[Path_] = set()
    for err in exc.errors():
        loc = tuple(part for part in err["loc"] if _is_data_key(part))
        where: Path_ = (*path, *loc)
        if where in reported:
            continue  # a union reports one problem per member; say it once
        reported.add(where)
        field = ".".join(str(p) for p in loc) or what
        kind = err["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            yield _unknown_key(key, loc, model, what), where, True
        elif kind == "missing":
            yield f"{what} needs `{field}`", where[:-1], False
        elif kind == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            message = (
                f"`{field}` of {what} must be one of {expected}, not {err['input']!r}"
            )
            yield message, where, False
        else:
            expected = _EXPECTED.get(kind)
            text = expected or _plain(err["msg"])
            message = f"`{field}` of {what} must be {text}, not {_show(err['input'])}"
            yield message, where, False


def _unknown_key(key: str, loc: Path_, model: type[BaseModel], what: str) -> str:
    names = _field_names(model, loc[:-1])
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = (
        f"; did you mean {close[0]!r}?"
        if close
        else "; remove it or check its spelling"
    )
    where = f" under `{'.'.join(map(str, loc[:-1]))}`" if loc[:-1] else ""
    return f"unknown key {key!r}{where} in {what}{hint}"


def _field_names(model: type[BaseModel], loc: Path_) -> list[str]:
    for part in loc:
        info = model.model_fields.get(str(part))
        inner = _model_in(info.annotation) if info else None
        if inner is None:
            return []
        model = inner
    return [f.alias or n for n, f in model.model_fields.items()]


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _is_data_key(part: object) -> bool:
    # pydantic puts union member names ("list[str]", "function-after[...]")
    # into locations; they are not keys of the YAML.
    return isinstance(part, int) or not any(c in str(part) for c in "[(")


def _plain(message: str) -> str:
    text = message[0].lower() + message[1:]
    return text.removeprefix("input should be ").removeprefix("value should be ")


def _show(value: object) -> str:
    return (
        _kind(value) if isinstance(value, dict | list) or value is None else repr(value)
    )


def _kind(value: object) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "text",
        type(None): "nothing (null)",
    }.get(type(value), type(value).__name__)
