"""What a run produced: step outcomes and the build status (Decisions 12).

Pure data and rules, shared by the flow (which computes the status), the
status artifact and `freshflow run --json` (a stable interface).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Result = Literal["success", "failure", "skipped", "terminated"]
SUCCESS_MESSAGE = "Build completed successfully"
FAILURE_MESSAGE = "Failed to execute"


@dataclass(frozen=True)
class PushedImage:
    """One tag that reached a registry."""

    reference: str
    digest: str
    image_id: str
    size: int | None = None

    @property
    def pinned(self) -> str:
        """`registry/repo:tag@digest`, as `--json` reports it."""
        return f"{self.reference}@{self.digest}"


@dataclass
class StepOutcome:
    """How one step ended and what it exported."""

    name: str
    type: str
    result: Result
    stage: str = "default"
    title: str = ""
    reason: str | None = None
    image_id: str | None = None
    pushed: list[PushedImage] = field(default_factory=list)
    exports: dict[str, str] = field(default_factory=dict)
    fail_fast: bool = True
    strict_fail_fast: bool | None = None
    parent: str | None = None
    started: float | None = None
    finished: float | None = None
    attempts: int = 1

    def as_json(self) -> dict[str, object]:
        document: dict[str, object] = {"type": self.type, "result": self.result}
        if self.image_id:
            document["imageId"] = self.image_id
        if self.type in ("build", "push"):
            document["pushed"] = [p.pinned for p in self.pushed]
        if self.reason:
            document["reason"] = self.reason
        if self.stage:
            document["stage"] = self.stage
        if self.parent:
            document["parent"] = self.parent
        if self.attempts > 1:
            document["attempts"] = self.attempts
        if self.started is not None and self.finished is not None:
            document["started"] = round(self.started, 3)
            document["finished"] = round(self.finished, 3)
        return document


@dataclass
class BuildReport:
    """The build status and every step's outcome."""

    status: Literal["success", "failure"]
    message: str
    flow_run_id: str
    steps: dict[str, StepOutcome]
    failed_steps: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "status": self.status,
            "message": self.message,
            "flow_run_id": self.flow_run_id,
            "steps": {name: o.as_json() for name, o in self.steps.items()},
            "images": [
                {
                    "step": name,
                    "reference": image.reference,
                    "digest": image.digest,
                    "imageId": image.image_id,
                    "size": image.size,
                }
                for name, outcome in self.steps.items()
                for image in outcome.pushed
            ],
        }

    def pushed(self) -> list[PushedImage]:
        return [p for o in self.steps.values() for p in o.pushed]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def build_status(
    outcomes: dict[str, StepOutcome], root_strict: bool
) -> tuple[Literal["success", "failure"], list[str]]:
    """Apply fail_fast / strict_fail_fast to the outcomes (Decisions 12).

    A failed fail-fast step fails the build.  A failed step with fail_fast
    false fails it only under strict_fail_fast (its own, else the root's).
    A parallel parent's result already reflects its fail-fast children; a
    parent with fail_fast false counts as a success, whatever its children do.
    """
    failing: list[str] = []
    for name, outcome in outcomes.items():
        if outcome.result not in ("failure", "terminated"):
            continue
        parent = outcomes.get(outcome.parent) if outcome.parent else None
        if parent is not None and not parent.fail_fast:
            continue
        strict = outcome.strict_fail_fast
        strict = root_strict if strict is None else strict
        if (outcome.fail_fast and parent is None) or (
            not outcome.fail_fast and strict and outcome.type != "parallel"
        ):
            failing.append(name)
    return ("failure" if failing else "success"), failing
