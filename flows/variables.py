"""`${{...}}` substitution and the CF_* system variables.

A reference names a variable (`CF_BRANCH`), a step member (`steps.X.imageId`
or `X.imageId`) or a build step (`X`, the image it built).  A reference to
nothing stays as literal text (Decisions 2): real pipelines test for that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

VARIABLE = re.compile(r"\$\{\{\s*([^{}\s]+)\s*\}\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def normalize_branch(branch: str) -> str:
    """`CF_BRANCH_TAG_NORMALIZED` as Decisions 6 defines it."""
    text = _TAG_UNSAFE.sub("_", branch)
    if text[:1] in (".", "-"):
        text = "_" + text[1:]
    return text[:128]


@dataclass(frozen=True)
class GitFacts:
    """What the checkout says about the commit being built."""

    branch: str = ""
    revision: str = ""
    repo_owner: str = ""
    repo_name: str = ""
    commit_author: str = ""
    commit_message: str = ""
    commit_url: str = ""


def system_variables(
    git: GitFacts,
    *,
    pipeline_name: str,
    build_id: str,
    started: datetime,
) -> dict[str, str]:
    """The CF_* variables for one run."""
    normalized = normalize_branch(git.branch)
    return {
        "CI": "true",
        "CF_BRANCH": git.branch,
        "CF_BRANCH_TAG_NORMALIZED": normalized,
        "CF_BRANCH_TAG_NORMALIZED_LOWER_CASE": normalized.lower(),
        "CF_REVISION": git.revision,
        "CF_SHORT_REVISION": git.revision[:7],
        "CF_REPO_OWNER": git.repo_owner,
        "CF_REPO_NAME": git.repo_name,
        "CF_COMMIT_AUTHOR": git.commit_author,
        "CF_COMMIT_MESSAGE": git.commit_message,
        "CF_COMMIT_URL": git.commit_url,
        "CF_BUILD_ID": build_id,
        "CF_BUILD_TIMESTAMP": str(int(started.timestamp() * 1000)),
        "CF_PIPELINE_NAME": pipeline_name,
    }


@dataclass
class Scope:
    """Everything a `${{...}}` reference may name during one run."""

    variables: dict[str, str] = field(default_factory=dict)
    steps: dict[str, dict[str, str]] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)

    def lookup(self, name: str) -> str | None:
        """The value `name` refers to, or None when it names nothing."""
        if name in self.variables:
            return self.variables[name]
        if name in self.images:
            return self.images[name]
        parts = name.split(".")
        if parts[0] == "steps" and len(parts) == 3:
            parts = parts[1:]
        if len(parts) == 2 and parts[0] in self.steps:
            return self.steps[parts[0]].get(parts[1])
        return None

    def substitute(self, text: str) -> str:
        """Replace every reference that names something; leave the rest."""

        def replace(match: re.Match[str]) -> str:
            value = self.lookup(match.group(1))
            return match.group(0) if value is None else value

        return VARIABLE.sub(replace, text)

    def with_step(self, name: str) -> Scope:
        """A copy with CF_STEP_NAME set, for one step's own substitutions."""
        return Scope({**self.variables, "CF_STEP_NAME": name}, self.steps, self.images)

    def expression_variables(
        self, workflow_result: str = "running"
    ) -> dict[str, object]:
        """The variables object for `when.condition` expressions."""
        steps: dict[str, object] = {name: dict(m) for name, m in self.steps.items()}
        result: dict[str, object] = {**self.variables}
        result.update(steps)
        result["steps"] = steps
        result["workflow"] = {"result": workflow_result}
        return result


def references(text: str) -> list[str]:
    """The names referenced in `text`, in order."""
    return [m.group(1) for m in VARIABLE.finditer(text)]


def parse_assignments(items: Mapping[str, str] | list[str]) -> dict[str, str]:
    """`K=V` strings (from `--var`) to a mapping; raise ValueError on bad input."""
    if isinstance(items, Mapping):
        return dict(items)
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not _NAME.match(key):
            msg = f"--var {item!r} must look like NAME=value (NAME: letters, digits, _)"
            raise ValueError(msg)
        result[key] = value
    return result
