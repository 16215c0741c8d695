"""Facts about the git checkout a pipeline runs in (for the CF_* variables)."""

from __future__ import annotations

import logging
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from flows.variables import GitFacts, system_variables

log = logging.getLogger(__name__)

_REMOTE = re.compile(r"[:/](?P<owner>[^/:]+)/(?P<name>[^/]+?)(?:\.git)?/?$")


def _git(directory: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def read_git_facts(directory: Path) -> GitFacts:
    """Branch, revision, author, message and repository of `directory`'s checkout.

    Outside a checkout every field is empty; `--branch` and `--revision` fill
    the ones a pipeline needs.
    """
    revision = _git(directory, "rev-parse", "HEAD")
    if revision is None:
        log.debug("%s is not in a git checkout", directory)
        return GitFacts()
    branch = _git(directory, "rev-parse", "--abbrev-ref", "HEAD") or ""
    if branch == "HEAD":  # detached: a tag build, or CI checked out a commit
        branch = _git(directory, "describe", "--tags", "--exact-match") or ""
    remote = _git(directory, "config", "--get", "remote.origin.url") or ""
    match = _REMOTE.search(remote)
    toplevel = _git(directory, "rev-parse", "--show-toplevel") or ""
    return GitFacts(
        branch=branch,
        revision=revision,
        repo_owner=match.group("owner") if match else "",
        repo_name=match.group("name") if match else Path(toplevel).name,
        commit_author=_git(directory, "log", "-1", "--format=%an") or "",
        commit_message=_git(directory, "log", "-1", "--format=%B") or "",
        commit_url=remote.removesuffix(".git") + f"/commit/{revision}"
        if remote.startswith("http")
        else "",
    )


def run_variables(
    pipeline_file: Path,
    branch: str | None,
    revision: str | None,
    *,
    build_id: str,
    pipeline_name: str | None = None,
) -> dict[str, str]:
    """The CF_* variables of a run of `pipeline_file`; flags beat the checkout."""
    git = read_git_facts(pipeline_file.parent)
    git = GitFacts(
        **{
            **git.__dict__,
            "branch": branch or git.branch,
            "revision": revision or git.revision,
        }
    )
    return system_variables(
        git,
        pipeline_name=pipeline_name or pipeline_file.parent.name,
        build_id=build_id,
        started=datetime.now(UTC),
    )
