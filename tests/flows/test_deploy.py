"""`freshflow deploy` before it talks to Prefect: names, paths, schedules."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from flows.deploy import (
    CHECKOUT,
    DeploymentRequest,
    default_name,
    parse_interval,
    refuse_secret_variables,
    relative_to_checkout,
    request_for,
    schedules,
)
from flows.errors import PlatformError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("1d", 86400),
        ("1.5h", 5400),
        (" 10M ", 600),
    ],
)
def test_intervals(text: str, seconds: float) -> None:
    assert parse_interval(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0", "-5", "5 minutes", "1w", "h"])
def test_bad_intervals(text: str) -> None:
    with pytest.raises(PlatformError, match="positive duration"):
        parse_interval(text)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("examples/multi-tag/codefresh.yml", "multi-tag"),
        ("pipelines/Release_Build/codefresh.yml", "release-build"),
        ("ci/nightly.yml", "nightly"),
    ],
)
def test_default_names(path: str, name: str) -> None:
    assert default_name(Path(path)) == name


def test_paths_inside_the_checkout_are_relative(tmp_path: Path) -> None:
    assert (
        relative_to_checkout(tmp_path / "a" / "codefresh.yml", tmp_path)
        == "a/codefresh.yml"
    )
    outside = tmp_path.parent / "elsewhere.yml"
    assert relative_to_checkout(outside, tmp_path) == str(outside.resolve())


@pytest.mark.parametrize(
    "name",
    ["REG_PASSWORD", "github_token", "AWS_SECRET_ACCESS_KEY", "MY_API_KEY", "Passwd"],
)
def test_secret_looking_variables_are_refused(name: str) -> None:
    with pytest.raises(PlatformError, match=f"variable '{name}' looks like a secret"):
        refuse_secret_variables({name: "x"})


@pytest.mark.parametrize("name", ["IMAGE_TAG", "AWS_ACCESS_KEY_ID", "DEPLOY_ENV"])
def test_ordinary_variables_pass(name: str) -> None:
    refuse_secret_variables({name: "x"})


def test_request_from_command_line_values() -> None:
    request = request_for(
        CHECKOUT / "examples" / "multi-tag" / "codefresh.yml",
        variables={"IMAGE_TAG": "1"},
        branch="main",
        crons=["0 3 * * *"],
        intervals=["1h"],
    )
    assert request.name == "multi-tag"
    assert request.full_name == "codefresh-pipeline/multi-tag"
    assert request.pipeline_file == "examples/multi-tag/codefresh.yml"
    assert request.parameters() == {
        "pipeline_file": "examples/multi-tag/codefresh.yml",
        "variables": {"IMAGE_TAG": "1"},
        "branch": "main",
    }
    made = schedules(request)
    assert [(s.cron, s.interval, s.active) for s in made] == [
        ("0 3 * * *", None, True),
        (None, timedelta(hours=1), True),
    ]


def test_paused_schedules_are_inactive() -> None:
    request = DeploymentRequest(
        "n", "p.yml", CHECKOUT, crons=("*/5 * * * *",), paused=True
    )
    assert [s.active for s in schedules(request)] == [False]


def test_minimal_parameters() -> None:
    assert DeploymentRequest("n", "p.yml", CHECKOUT).parameters() == {
        "pipeline_file": "p.yml"
    }


def test_bad_cron_is_reported() -> None:
    request = DeploymentRequest("n", "p.yml", CHECKOUT, crons=("61 * * *",))
    with pytest.raises(
        PlatformError, match="--cron '61 \\* \\* \\*' is not a valid cron"
    ):
        schedules(request)


def test_checkout_must_hold_the_flow(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match=r"has no flows/pipeline\.py"):
        request_for(tmp_path / "codefresh.yml", checkout=tmp_path)
