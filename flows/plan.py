"""Translate a validated `Pipeline` into a `Plan`: steps with their task options.

The plan is pure data.  It fixes, per step, what does not depend on earlier
steps: Prefect task options (retries and their delays, timeout), fail-fast
rules, stage, and for parallel steps the children with inherited timeouts.
What depends on earlier steps (image IDs, conditions) is resolved by the flow
at the step's turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flows.model import (
    BuildStep,
    OtherStep,
    ParallelStep,
    Pipeline,
    PushStep,
    Retry,
    Step,
    When,
)
from flows.validation import parse_timeout

DEFAULT_STAGE = "default"
_MAX_RETRY_DELAYS = 50  # Prefect keeps at most 50 retry delays


@dataclass(frozen=True)
class RetryPolicy:
    """Codefresh `retry` as Prefect task options (Decisions 3)."""

    max_attempts: int = 1
    delays: tuple[float, ...] = ()

    @classmethod
    def from_model(cls, retry: Retry | None) -> RetryPolicy:
        if retry is None:
            return cls()
        count = min(retry.max_attempts - 1, _MAX_RETRY_DELAYS)
        delays = tuple(retry.delay * retry.exponential_factor**n for n in range(count))
        return cls(retry.max_attempts, delays)

    @property
    def retries(self) -> int:
        return self.max_attempts - 1


@dataclass(frozen=True)
class PlannedStep:
    """One step as the flow runs it."""

    name: str
    kind: str
    title: str
    stage: str
    fail_fast: bool
    strict_fail_fast: bool | None
    timeout: float | None
    retry: RetryPolicy
    when: When | None
    spec: Step
    children: tuple[PlannedStep, ...] = ()
    parent: str | None = None
    unsupported: bool = False

    @property
    def label(self) -> str:
        """What the Prefect UI shows for the step's task run."""
        return self.title if self.title != self.name else self.name


@dataclass(frozen=True)
class Plan:
    """The whole pipeline as the flow runs it."""

    file: str
    mode: str
    stages: tuple[str, ...]
    steps: tuple[PlannedStep, ...]
    strict_fail_fast: bool
    extra_stages: tuple[str, ...] = field(default=())

    def all_steps(self) -> list[PlannedStep]:
        """Every step, parallel children right after their parent."""
        found: list[PlannedStep] = []
        for step in self.steps:
            found.append(step)
            found.extend(step.children)
        return found


def translate(pipeline: Pipeline, file: str) -> Plan:
    """Build the plan of a pipeline that passed `flows.validation.check`."""
    root_fail_fast = pipeline.fail_fast if pipeline.fail_fast is not None else True
    steps = tuple(
        _planned(name, step, root_fail_fast, None, None)
        for name, step in pipeline.steps.items()
    )
    plan_stages = list(pipeline.stages)
    extra = []
    for step in [s for top in steps for s in (top, *top.children)]:
        if step.stage not in plan_stages and step.stage not in extra:
            extra.append(step.stage)  # Decisions 17: unlisted stages go last
    return Plan(
        file=file,
        mode=pipeline.mode,
        stages=tuple(plan_stages),
        steps=steps,
        strict_fail_fast=bool(pipeline.strict_fail_fast),
        extra_stages=tuple(extra),
    )


def _planned(
    name: str,
    step: Step,
    root_fail_fast: bool,
    parent: ParallelStep | None,
    parent_name: str | None,
) -> PlannedStep:
    if isinstance(step, OtherStep):
        return PlannedStep(
            name=name,
            kind=step.type,
            title=step.title or name,
            stage=step.stage or DEFAULT_STAGE,
            fail_fast=root_fail_fast,
            strict_fail_fast=None,
            timeout=None,
            retry=RetryPolicy(),
            when=None,
            spec=step,
            parent=parent_name,
            unsupported=True,
        )
    fail_fast = step.fail_fast if step.fail_fast is not None else root_fail_fast
    children: tuple[PlannedStep, ...] = ()
    if isinstance(step, ParallelStep):
        children = tuple(
            _planned(child_name, child, root_fail_fast, step, name)
            for child_name, child in step.steps.items()
        )
    return PlannedStep(
        name=name,
        kind=step.type,
        title=step.title or name,
        stage=step.stage
        or (parent.stage if parent and parent.stage else DEFAULT_STAGE),
        fail_fast=fail_fast,
        strict_fail_fast=step.strict_fail_fast,
        timeout=_timeout(step, parent),
        retry=RetryPolicy.from_model(step.retry),
        when=step.when,
        spec=step,
        children=children,
        parent=parent_name,
    )


def _timeout(
    step: PushStep | BuildStep | ParallelStep, parent: ParallelStep | None
) -> float | None:
    """A child's own `timeout` (even null) wins over its parent's (Decisions 4)."""
    if "timeout" in step.model_fields_set or parent is None:
        return _seconds(step.timeout)
    return _seconds(parent.timeout)


def _seconds(text: str | None) -> float | None:
    try:
        return parse_timeout(text)
    except ValueError:
        return None  # validation reported it; a `${{VAR}}` timeout is resolved later
