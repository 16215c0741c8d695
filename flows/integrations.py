"""What the pure core knows about registry integrations: names and kinds.

The blocks themselves (with credentials) live in `blocks/`; the loader and the
translator only need this summary, so `validate` and `plan` stay free of
secrets and of Prefect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

ECR_HOST = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)"
    r"\.amazonaws\.com(?:\.cn)?$"
)
AWS_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d$")
DOCKER_HUB = "docker.io"


@dataclass(frozen=True)
class IntegrationInfo:
    """One registry integration as the pipeline sees it."""

    name: str
    kind: Literal["docker", "ecr"]
    domain: str
    prefix: str = ""
    default: bool = False
    primary: bool = False
    region: str | None = None


@dataclass(frozen=True)
class Catalog:
    """All integrations known when a pipeline is checked or planned."""

    integrations: tuple[IntegrationInfo, ...] = ()

    def get(self, name: str) -> IntegrationInfo | None:
        return next((i for i in self.integrations if i.name == name), None)

    def names(self) -> list[str]:
        return sorted(i.name for i in self.integrations)

    def default(self) -> IntegrationInfo | None:
        """The integration marked default, else the only one (Decisions 9)."""
        marked = [i for i in self.integrations if i.default]
        if marked:
            return marked[0]
        return self.integrations[0] if len(self.integrations) == 1 else None

    def for_domain(self, domain: str) -> IntegrationInfo | None:
        """The integration that pulls from `domain`: the primary one first."""
        matches = [i for i in self.integrations if i.domain == domain]
        primary = [i for i in matches if i.primary]
        return next(iter(primary or matches), None)


def ecr_host(registry: str) -> re.Match[str] | None:
    """The ECR host match of a `registry` value `<host>[/prefix]`, or None."""
    return ECR_HOST.match(registry.partition("/")[0])


def looks_like_host(value: str) -> bool:
    """True when a `registry` value is a host (inline mode), not a name."""
    return "." in value or ":" in value or value == "localhost"
