"""Rules that need the whole pipeline (and the integrations) to check.

`flows.loader` checks each step's shape; this module checks what Codefresh's
validator checks across fields and steps: tag/tags, timeouts, registries and
ECR fields, stages, references between steps, unsupported features.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from flows.errors import Problem
from flows.integrations import Catalog, IntegrationInfo, ecr_host, looks_like_host
from flows.model import (
    KNOWN_STEP_TYPES,
    BuildStep,
    OtherStep,
    ParallelStep,
    Pipeline,
    PushStep,
    Step,
)
from flows.references import ImageReferenceError, check_path, check_tag
from flows.variables import VARIABLE
from flows.yamlsource import Path_, Source

_TIMEOUT = re.compile(r"^(\d+\.?\d*|\.\d+)([smh])$")
_MAX_TIMEOUT_MS = 2147483647
_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_UNSUPPORTED_BUILD_FIELDS = (
    "cache_to",
    "squash",
    "buildkit",
    "progress",
    "ssh",
    "secrets",
    "buildx",
    "platform",
    "cosign",
    "provider",
)
_RETRY_RANGES = {
    "max_attempts": ("maxAttempts", 1, 10),
    "delay": ("delay", 5, 60),
    "exponential_factor": ("exponentialFactor", 1, 5),
}


def parse_timeout(text: str | None) -> float | None:
    """Seconds for a Codefresh `timeout`; None for none (Decisions 4).

    Raises ValueError with the reason when the text is malformed.
    """
    if text is None:
        return None
    match = _TIMEOUT.match(text.strip())
    if not match:
        msg = (
            f"timeout {text!r} must be a number followed by s, m or h, like 45m or 1.5h"
        )
        raise ValueError(msg)
    seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]
    if seconds * 1000 > _MAX_TIMEOUT_MS:
        msg = f"timeout {text!r} is longer than the maximum of 2147483647 ms (about 24.8 days)"
        raise ValueError(msg)
    return seconds or None


def all_steps(
    steps: dict[str, Step], path: Path_ = ("steps",)
) -> Iterator[tuple[str, Step, Path_]]:
    """Every step with its YAML path, parallel children after their parent."""
    for name, step in steps.items():
        yield name, step, (*path, name)
        if isinstance(step, ParallelStep):
            yield from all_steps(step.steps, (*path, name, "steps"))


def check(
    pipeline: Pipeline,
    source: Source,
    catalog: Catalog | None,
    *,
    skip_unsupported: bool = False,
) -> list[Problem]:
    """Every cross-field problem in `pipeline`, errors and warnings.

    With `catalog` None (Prefect unreachable) integration names are not
    checked, and a named integration may be an ECR one.
    """
    checker = _Checker(pipeline, source, catalog, skip_unsupported)
    for name, step, path in all_steps(pipeline.steps):
        checker.step(name, step, path)
    checker.references()
    return sorted(checker.problems, key=_order)


def _order(problem: Problem) -> tuple[int, int]:
    where = problem.location
    return (where.line, where.column) if where else (0, 0)


def _dependencies(step: Step) -> list[str]:
    when = getattr(step, "when", None)
    if when is None or when.steps is None:
        return []
    if isinstance(when.steps, list):
        return [d.name for d in when.steps]
    return [d.name for d in [*(when.steps.all or []), *(when.steps.any or [])]]


def _has_variable(text: str) -> bool:
    return VARIABLE.search(text) is not None


class _Checker:
    def __init__(
        self, pipeline: Pipeline, source: Source, catalog: Catalog | None, skip: bool
    ) -> None:
        self.pipeline = pipeline
        self.source = source
        self.catalog = catalog
        self.skip = skip
        self.problems: list[Problem] = []
        self.names = {n: s for n, s, _ in all_steps(pipeline.steps)}

    def add(
        self, message: str, path: Path_, *, warning: bool = False, key: bool = True
    ) -> None:
        where = self.source.where_key(path) if key else self.source.where(path)
        self.problems.append(Problem(message, where, "warning" if warning else "error"))

    def unsupported(self, message: str, path: Path_) -> None:
        if self.skip:
            self.add(f"{message}; skipped (--skip-unsupported)", path, warning=True)
        else:
            self.add(
                f"{message}; remove it, or pass --skip-unsupported to run without it",
                path,
            )

    def step(self, name: str, step: Step, path: Path_) -> None:
        if isinstance(step, OtherStep):
            self.other(name, step, path)
            return
        self.common(name, step, path)
        if isinstance(step, PushStep):
            self.push(name, step, path)
        elif isinstance(step, BuildStep):
            self.build(name, step, path)
        elif isinstance(step, ParallelStep):
            self.parallel(name, step, path)

    def other(self, name: str, step: OtherStep, path: Path_) -> None:
        if step.type in KNOWN_STEP_TYPES:
            what = f"step {name!r} has type {step.type!r}, which freshflow does not run yet (it runs build, push and parallel)"
        else:
            what = f"step {name!r} has type {step.type!r}, a marketplace or unknown step type that freshflow cannot run"
        self.unsupported(
            what, (*path, "type") if "type" in step.model_fields_set else path
        )

    def common(
        self, name: str, step: PushStep | BuildStep | ParallelStep, path: Path_
    ) -> None:
        if step.stage is not None and step.stage not in self.pipeline.stages:
            listed = ", ".join(self.pipeline.stages) or "none"
            self.add(
                f"stage {step.stage!r} of step {name!r} is not in `stages` ({listed}); "
                "it is shown after the listed stages",
                (*path, "stage"),
                warning=True,
            )
        if step.timeout is not None and not _has_variable(step.timeout):
            try:
                parse_timeout(step.timeout)
            except ValueError as exc:
                self.add(f"step {name!r}: {exc}", (*path, "timeout"), key=False)
        if step.retry is not None:
            for field, (key, low, high) in _RETRY_RANGES.items():
                value = getattr(step.retry, field)
                if field in step.retry.model_fields_set and not low <= value <= high:
                    self.add(
                        f"retry.{key} of step {name!r} is {value:g}, outside the documented range {low}-{high}; it is used as given",
                        (*path, "retry", key),
                        warning=True,
                    )
        from flows.post_steps import operation_problems

        for problem in operation_problems(name, step):
            self.add(problem.message, (*path, *problem.path), warning=problem.warning)
        if step.hooks is not None:
            self.unsupported(
                f"step {name!r} uses `hooks`, which need the freestyle runner freshflow does not have yet",
                (*path, "hooks"),
            )
        if step.when is not None and step.when.condition is not None:
            self.conditions(
                name, step.when.condition.all, (*path, "when", "condition", "all")
            )
            self.conditions(
                name, step.when.condition.any, (*path, "when", "condition", "any")
            )

    def conditions(self, name: str, exprs: dict[str, str] | None, path: Path_) -> None:
        from flows.conditions import validate_expression

        for label, expression in (exprs or {}).items():
            error = validate_expression(expression)
            if error is not None:
                self.add(
                    f"condition {label!r} of step {name!r}: {error}",
                    (*path, label),
                    key=False,
                )

    def tags(self, name: str, step: PushStep | BuildStep, path: Path_) -> None:
        if step.tag is not None and step.tags is not None:
            self.add(
                f"step {name!r} sets both `tag` and `tags`; use `tags` for several tags",
                (*path, "tags"),
            )
        values = [(step.tag, (*path, "tag"))] if step.tag is not None else []
        values += [(t, (*path, "tags", i)) for i, t in enumerate(step.tags or [])]
        for tag, where in values:
            if tag is not None and not _has_variable(tag):
                try:
                    check_tag(tag.lower() if isinstance(step, BuildStep) else tag)
                except ImageReferenceError as exc:
                    self.add(f"step {name!r}: {exc}", where, key=False)

    def push(self, name: str, step: PushStep, path: Path_) -> None:
        self.tags(name, step, path)
        if step.image_name is not None and not _has_variable(step.image_name):
            self.image_name(name, step.image_name, (*path, "image_name"))
        ecr = self.registry(name, step.registry, step.provider, path)
        self.ecr_fields(name, step, path, ecr)
        self.inline_ecr(name, step, path)
        if step.registry_context is not None:
            self.known_integration(
                name, step.registry_context, (*path, "registry_context")
            )
        self.candidate(name, step, path)

    def inline_ecr(self, name: str, step: PushStep, path: Path_) -> None:
        """Keys, region and credentials of ECR without an integration."""
        registry = step.registry or ""
        ecr_registry = ecr_host(registry) is not None
        inline = step.provider == "ecr" or ecr_registry
        if inline and step.credentials is not None:
            self.add(
                f"step {name!r}: `credentials` are ignored for Amazon ECR; use accessKeyId and secretAccessKey",
                (*path, "credentials"),
                warning=True,
            )
        keys = step.access_key_id or step.secret_access_key
        if keys and not inline and not _has_variable(registry):
            self.add(
                f"step {name!r}: accessKeyId/secretAccessKey are only used with `provider: ecr` or an ECR registry host; add one or remove the keys",
                (*path, "accessKeyId" if step.access_key_id else "secretAccessKey"),
            )
        if (
            step.provider == "ecr"
            and step.region is None
            and not ecr_registry
            and not _has_variable(registry)
        ):
            self.add(
                f"step {name!r}: `provider: ecr` needs `region`, or `registry: <account>.dkr.ecr.<region>.amazonaws.com`",
                (*path, "provider"),
            )

    def build(self, name: str, step: BuildStep, path: Path_) -> None:
        self.tags(name, step, path)
        if not _has_variable(step.image_name):
            if step.image_name != step.image_name.lower():
                self.add(
                    f"image_name {step.image_name!r} of step {name!r} has capitals; it is lowercased",
                    (*path, "image_name"),
                    warning=True,
                )
            self.image_name(name, step.image_name.lower(), (*path, "image_name"))
        ecr = self.registry(name, step.registry, None, path, build=True)
        self.ecr_fields(name, step, path, ecr)
        for i, context in enumerate(step.registry_contexts):
            self.known_integration(name, context, (*path, "registry_contexts", i))
        for field in _UNSUPPORTED_BUILD_FIELDS:
            if field in step.model_fields_set:
                self.unsupported(
                    f"build step {name!r} sets {field!r}, which freshflow's engine builds do not support",
                    (*path, field),
                )

    def parallel(self, name: str, step: ParallelStep, path: Path_) -> None:
        criteria = step.success_criteria
        if criteria is None:
            return
        selection = criteria.steps
        listed = selection if isinstance(selection, list) else []
        if selection is not None and not isinstance(selection, list):
            listed = [*(selection.only or []), *(selection.ignore or [])]
        for child in listed:
            if child not in step.steps:
                self.add(
                    f"success_criteria of {name!r} names {child!r}, which is not one of its steps ({', '.join(step.steps)})",
                    (*path, "success_criteria"),
                )
        if criteria.condition is not None:
            where = (*path, "success_criteria", "condition")
            self.conditions(name, criteria.condition.all, (*where, "all"))
            self.conditions(name, criteria.condition.any, (*where, "any"))

    def image_name(self, name: str, image_name: str, path: Path_) -> None:
        try:
            check_path(
                image_name.split("/", 1)[1]
                if looks_like_host(image_name.split("/")[0]) and "/" in image_name
                else image_name
            )
        except ImageReferenceError as exc:
            self.add(f"step {name!r}: {exc}", path, key=False)

    def registry(
        self,
        name: str,
        registry: str | None,
        provider: str | None,
        path: Path_,
        *,
        build: bool = False,
    ) -> bool:
        """Check `registry`; return whether the push goes to ECR."""
        if provider == "ecr":
            return True
        if self.catalog is None:
            return True  # integrations unknown: leave ECR fields to the run
        if registry is None:
            default = self.catalog.default()
            if default is None and not build:
                known = ", ".join(self.catalog.names()) or "none"
                self.add(
                    f"push step {name!r} has no `registry` and there is no default integration (integrations: {known}); "
                    "set `registry`, or mark one default with `freshflow registry add ... --default`",
                    path,
                )
            return default is not None and default.kind == "ecr"
        if _has_variable(registry):
            return True  # may name ECR: leave its fields to the run
        if looks_like_host(registry):
            return ecr_host(registry) is not None
        info = self.known_integration(name, registry, (*path, "registry"))
        return info is not None and info.kind == "ecr"

    def known_integration(
        self, name: str, integration: str, path: Path_
    ) -> IntegrationInfo | None:
        if _has_variable(integration) or self.catalog is None:
            return None
        info = self.catalog.get(integration)
        if info is None:
            known = ", ".join(self.catalog.names()) or "none yet"
            self.add(
                f"step {name!r}: registry integration {integration!r} does not exist (known: {known}); "
                f"add it with `freshflow registry add {integration} --domain HOST`",
                path,
                key=False,
            )
        return info

    def ecr_fields(
        self, name: str, step: PushStep | BuildStep, path: Path_, ecr: bool
    ) -> None:
        if step.region is not None and not ecr:
            self.add(
                f"step {name!r}: `region` is only for Amazon ECR registries (cross-region pushes are supported only for ECR); "
                "remove it or push to an ECR integration",
                (*path, "region"),
            )
        elif (
            step.region is not None
            and not _has_variable(step.region)
            and not _REGION.match(step.region)
        ):
            self.add(
                f"step {name!r}: {step.region!r} is not an AWS region name like us-east-1",
                (*path, "region"),
                key=False,
            )
        if (
            step.role_arn is not None
            and not _has_variable(step.role_arn)
            and not _ROLE_ARN.match(step.role_arn)
        ):
            self.add(
                f"step {name!r}: role_arn {step.role_arn!r} is not an IAM role ARN; write arn:aws:iam::<12-digit account>:role/<name>",
                (*path, "role_arn"),
                key=False,
            )
        duration = step.aws_duration_seconds
        if duration is not None and step.role_arn is None:
            self.add(
                f"step {name!r}: aws_duration_seconds only applies when assuming a role; add role_arn or remove it",
                (*path, "aws_duration_seconds"),
            )
        elif duration is not None and not 900 <= duration <= 3600:
            self.add(
                f"step {name!r}: aws_duration_seconds is {duration}; it must be between 900 and 3600",
                (*path, "aws_duration_seconds"),
                key=False,
            )
        if step.aws_session_name is not None and step.role_arn is None:
            self.add(
                f"step {name!r}: aws_session_name only applies when assuming a role; add role_arn or remove it",
                (*path, "aws_session_name"),
                warning=True,
            )

    def candidate(self, name: str, step: PushStep, path: Path_) -> None:
        match = VARIABLE.fullmatch(step.candidate.strip())
        if match is None:
            return
        ref = match.group(1)
        target = self.names.get(ref)
        if target is not None and not isinstance(target, BuildStep):
            self.add(
                f"candidate of step {name!r} refers to step {ref!r}, which is a {target.type} step; "
                "a candidate must name a build step or an image",
                (*path, "candidate"),
                key=False,
            )

    def references(self) -> None:
        for name, step, path in all_steps(self.pipeline.steps):
            when = getattr(step, "when", None)
            if when is None or when.steps is None:
                continue
            deps = (
                when.steps
                if isinstance(when.steps, list)
                else [*(when.steps.all or []), *(when.steps.any or [])]
            )
            for dep in deps:
                if dep.name not in self.names:
                    self.add(
                        f"when.steps of step {name!r} names {dep.name!r}, which is not a step of this pipeline",
                        (*path, "when", "steps"),
                    )
                elif dep.name == name:
                    self.add(
                        f"step {name!r} waits for itself in when.steps",
                        (*path, "when", "steps"),
                    )
        self.cycles()

    def cycles(self) -> None:
        """A `when.steps` cycle can never start; report it where it closes."""
        graph = {
            name: _dependencies(step)
            for name, step, _ in all_steps(self.pipeline.steps)
        }
        paths = {name: path for name, _, path in all_steps(self.pipeline.steps)}
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        trail: list[str] = []

        def visit(node: str) -> None:
            state[node] = 1
            trail.append(node)
            for dep in graph.get(node, []):
                if dep not in graph or dep == node:
                    continue  # reported above
                if state.get(dep) == 1:
                    loop = [*trail[trail.index(dep) :], dep]
                    self.add(
                        f"when.steps form a cycle: {' -> '.join(loop)}; these steps can never start",
                        (*paths[node], "when", "steps"),
                    )
                elif state.get(dep) is None:
                    visit(dep)
            trail.pop()
            state[node] = 2

        for node in graph:
            if state.get(node) is None:
                visit(node)
