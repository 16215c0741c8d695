"""The exceptions freshflow raises, one base class and one subclass per domain.

    FreshflowError                   base; `exit_code` is what the CLI exits with
    ├── PipelineFileError            codefresh.yml unreadable or invalid (2)
    ├── ExpressionError              a `when.condition` expression is malformed
    ├── IntegrationError             a registry integration is missing or bad (3)
    ├── PlatformError                Prefect server, work pool, deployment (4)
    └── StepError                    a step failed while running (1)
        ├── EngineError              the Docker Engine cannot be reached
        ├── BuildError               the engine reported a build failure
        ├── ImageNotFoundError       the candidate image does not exist
        ├── PushError                the registry refused or lost a push
        │   ├── RegistryAuthError    the registry refused the credentials
        │   └── RegistryUnavailableError  unreachable or failing (5xx, 429)
        ├── AwsError                 STS or ECR refused a request
        └── StepTimeoutError         a step ran past its `timeout`

Messages say what failed, quote the value, and say what to do next.  They never
contain a secret: callers pass names, hosts and references, not credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Location:
    """A position in a YAML file, 1-based like editors show it."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or suspicious) in a pipeline file."""

    message: str
    location: Location | None = None
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}{prefix}{self.message}"


class FreshflowError(Exception):
    """Base of every error freshflow reports to a user."""

    exit_code = 1


class PipelineFileError(FreshflowError):
    """The pipeline file cannot be loaded; carries every problem found."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = [p for p in problems if p.severity == "error"]
        self.warnings = [p for p in problems if p.severity == "warning"]
        super().__init__("\n".join(str(p) for p in self.problems))


class ExpressionError(FreshflowError):
    """A condition expression cannot be parsed or evaluated."""

    exit_code = 2


class IntegrationError(FreshflowError):
    """A registry integration is missing, ambiguous or incomplete."""

    exit_code = 3


class PlatformError(FreshflowError):
    """The Prefect server, a work pool or a deployment cannot be used."""

    exit_code = 4


class StepError(FreshflowError):
    """A step failed at run time; the message is the step's failure reason.

    `pushed` lists what reached a registry before the failure, so a partial
    push is always reported.
    """

    pushed: tuple[object, ...] = ()


class EngineError(StepError):
    """The Docker Engine cannot be reached or answered unexpectedly."""


class BuildError(StepError):
    """The engine reported an error while building an image."""


class ImageNotFoundError(StepError):
    """The image to push does not exist locally and cannot be pulled."""


class PushError(StepError):
    """A registry refused a push or the push was interrupted."""


class RegistryAuthError(PushError):
    """A registry refused the credentials given for it."""


class RegistryUnavailableError(PushError):
    """A registry could not be reached or failed on its side; a retry may work."""


class AwsError(StepError):
    """AWS (STS or ECR) refused a request."""


class StepTimeoutError(StepError, TimeoutError):
    """A step ran longer than its `timeout`; the work was stopped."""
