"""Authenticated TLS registries, inline credentials, and pushes that must fail.

The last test scans everything a run leaves behind (Prefect logs, flow-run
parameters, files under the home directory) for the passwords used here.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import CliResult
from tests.support.leaks import files_written_with, prefect_texts
from tests.support.registry import Registry

USER, PASSWORD = "pusher", "s3cret-Pa55word-for-tests"
INLINE_PASSWORD = "inline-Secret-77"
_SESSION_START = time.time()

PUSH = """\
version: '1.0'
steps:
  build:
    type: build
    image_name: app
    disable_push: true
  push:
    type: push
    candidate: ${{build}}
    tags: [v1, latest]
    registry: secure
"""

INLINE = """\
version: '1.0'
steps:
  build:
    type: build
    image_name: app
    disable_push: true
  step_name:
    type: push
    title: Step Title
    description: Free text description
    candidate: ${{build}}
    tags: [ latest, ${{CF_BRANCH}} ]
    image_name: codefresh/app
    registry: HOST
    credentials:
      username: ${{REG_USER}}
      password: ${{REG_PASSWORD}}
    fail_fast: false
    when:
      branch:
        only:
          - /FB-/i
"""


@pytest.fixture
def secure(registry_factory: Callable[..., Registry]) -> Registry:
    return registry_factory("secure", tls=True, auth=(USER, PASSWORD))


def failed_step(result: CliResult, step: str) -> dict[str, object]:
    assert result.exit_code == 1, result.stdout + result.stderr
    document = result.json()
    assert document["status"] == "failure"
    steps = document["steps"]
    assert isinstance(steps, dict)
    assert steps[step]["result"] == "failure"
    return steps[step]  # type: ignore[no-any-return]


def test_right_credentials_push_over_tls(
    freshflow, workspace, secure, integrations
) -> None:
    integrations("secure", secure)
    result = freshflow("run", str(workspace(PUSH)), "--branch", "main", "--json")

    assert result.exit_code == 0, result.stderr
    assert sorted(secure.tags("app")) == ["latest", "v1"]
    pushed = result.json()["steps"]["push"]["pushed"]  # type: ignore[index]
    assert all(p.startswith(f"{secure.host}/app:") for p in pushed)


def test_wrong_password_fails_unauthorized(
    freshflow, workspace, secure, integrations
) -> None:
    wrong = dataclasses.replace(secure, password="not-the-password")
    integrations("secure", wrong)
    result = freshflow("run", str(workspace(PUSH)), "--branch", "main", "--json")

    step = failed_step(result, "push")
    assert "unauthorized" in str(step["reason"])
    assert f"registry {secure.host!r}, repository 'app', tag 'v1'" in str(
        step["reason"]
    )
    assert step["pushed"] == []
    assert secure.tags("app") == []
    assert result.json()["message"] == "Failed to execute: push failed"


def test_inline_credentials(
    freshflow, workspace, secure, integrations, monkeypatch
) -> None:
    monkeypatch.setenv("REG_USER", USER)
    monkeypatch.setenv("REG_PASSWORD", PASSWORD)
    path = workspace(INLINE.replace("HOST", secure.host))
    result = freshflow("run", str(path), "--branch", "FB-login", "--json")

    assert result.exit_code == 0, result.stderr
    assert sorted(secure.tags("codefresh/app")) == ["FB-login", "latest"]
    skipped = freshflow("run", str(path), "--branch", "main", "--json")
    step = skipped.json()["steps"]["step_name"]  # type: ignore[index]
    assert step["result"] == "skipped"
    assert "main" in step["reason"]
    assert "/FB-/i" in step["reason"]


def test_inline_wrong_password_fails_but_fail_fast_false_keeps_build_green(
    freshflow, workspace, secure, monkeypatch
) -> None:
    monkeypatch.setenv("REG_USER", USER)
    monkeypatch.setenv("REG_PASSWORD", INLINE_PASSWORD)
    result = freshflow(
        "run",
        str(workspace(INLINE.replace("HOST", secure.host))),
        "--branch",
        "fb-1",
        "--json",
    )

    assert result.exit_code == 0  # fail_fast: false (Decisions 12)
    step = result.json()["steps"]["step_name"]  # type: ignore[index]
    assert step["result"] == "failure"
    assert "unauthorized" in step["reason"]


def test_missing_candidate_fails_clearly(
    freshflow, workspace, registry_factory, integrations
) -> None:
    registry = registry_factory()
    integrations("local", registry)
    text = "version: '1.0'\nsteps:\n  push:\n    type: push\n    candidate: 127.0.0.1:1/nothing/here:v9\n    registry: local\n"
    result = freshflow("run", str(workspace(text)), "--branch", "main", "--json")

    step = failed_step(result, "push")
    assert (
        "candidate '127.0.0.1:1/nothing/here:v9' does not exist locally and cannot be pulled"
        in str(step["reason"])
    )


def test_registry_down_fails_clearly(
    freshflow, workspace, registry_factory, integrations
) -> None:
    registry = registry_factory()
    integrations("local", registry)
    registry.stop()
    result = freshflow(
        "run",
        str(workspace(PUSH.replace("secure", "local"))),
        "--branch",
        "main",
        "--json",
    )

    step = failed_step(result, "push")
    assert "the registry cannot be reached" in str(step["reason"])
    assert registry.host in str(step["reason"])


def test_validate_reports_location_and_exit_2(freshflow, workspace) -> None:
    path = workspace(
        "version: '1.0'\nsteps:\n  p:\n    type: push\n    candidate: x\n    tagz: [a]\n"
    )
    result = freshflow("validate", str(path))

    assert result.exit_code == 2
    assert (
        f"{path}:6:5: unknown key 'tagz' in push step 'p'; did you mean 'tag'?"
        in result.stderr
    )
    assert "Traceback" not in result.stderr + result.stdout


def test_run_refuses_an_invalid_pipeline(freshflow, workspace) -> None:
    path = workspace("version: '1.0'\nsteps:\n  d:\n    type: deploy\n")
    result = freshflow("run", str(path))

    assert result.exit_code == 2
    assert "pass --skip-unsupported" in result.stderr


def test_plan_touches_nothing(
    freshflow, workspace, registry_factory, integrations
) -> None:
    registry = registry_factory()
    integrations("secure", registry)
    result = freshflow("plan", str(workspace(PUSH)), "--branch", "main", "--json")

    assert result.exit_code == 0, result.stderr
    steps = result.json()["steps"]
    assert steps["push"]["pushes"] == [
        f"{registry.host}/app:v1",
        f"{registry.host}/app:latest",
    ]  # type: ignore[index]
    assert registry.repositories() == []


def test_no_secret_is_left_anywhere(
    freshflow, prefect_server, workspace, secure, integrations, monkeypatch
) -> None:
    """Runs both credential modes, then scans logs, parameters and files."""
    integrations("secure", secure)
    monkeypatch.setenv("REG_USER", USER)
    monkeypatch.setenv("REG_PASSWORD", PASSWORD)
    # One checkout: each run rewrites its codefresh.yml before running.
    runs = [freshflow("run", str(workspace(PUSH)), "--branch", "main", "--json")]
    inline = workspace(INLINE.replace("HOST", secure.host))
    runs.append(freshflow("run", str(inline), "--branch", "fb-x", "--json"))
    assert [r.exit_code for r in runs] == [0, 0]

    texts = prefect_texts([str(r.json()["flow_run_id"]) for r in runs])
    for secret in (PASSWORD, INLINE_PASSWORD):
        assert not [t for t in texts if secret in t]
        assert not files_written_with(Path.home(), (secret,), _SESSION_START)
        prefect_home = Path(os.environ["PREFECT_HOME"])
        assert not files_written_with(prefect_home, (secret,), _SESSION_START)


PROMOTE = """\
version: '1.0'
steps:
  promote:
    type: push
    candidate: SOURCE/team/app:rc1
    registry_context: source
    registry: target
    tag: prod
"""


def test_promotion_pulls_with_registry_context(
    freshflow,
    workspace,
    secure,
    registry_factory,
    integrations,
    docker_client,
    base_image,
) -> None:
    from tests.support.images import build_test_image, push_image, remove_images

    source_ref = f"{secure.host}/team/app:rc1"
    build_test_image(docker_client, source_ref, source_ref)
    assert not push_image(docker_client, source_ref, secure.auth_config()).errors
    remove_images(docker_client, source_ref)  # the engine must pull it back
    target = registry_factory("target")
    integrations("source", secure)
    integrations("target", target)
    result = freshflow(
        "run", str(workspace(PROMOTE.replace("SOURCE", secure.host))), "--json"
    )

    assert result.exit_code == 0, result.stderr + result.stdout
    assert target.tags("team/app") == ["prod"]
    assert target.manifest_digest("team/app", "prod") == secure.manifest_digest(
        "team/app", "rc1"
    )
