"""Run the `freshflow` command in-process against the session's Prefect server."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from flows.cli import app


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, object]:
        document = json.loads(self.stdout)
        assert isinstance(document, dict)
        return document


@pytest.fixture
def freshflow(prefect_server: None) -> Callable[..., CliResult]:
    """`freshflow ARGS...` as a user types it; returns exit code and output."""
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None) -> CliResult:
        result = runner.invoke(app, list(args), input=stdin, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return invoke
