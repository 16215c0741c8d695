"""Amazon ECR pushes through `freshflow run`, against moto and ECR stand-ins.

A module-wide ``moto_server`` answers STS and ECR; two TLS Distribution
registries answer as the ECR hosts of account 123456789012 in us-east-1
(127.0.0.2:443) and us-west-2 (127.0.0.3:443), accepting user ``AWS`` with the
password inside moto's tokens.  Each test resets moto (state and recorded
requests), points boto3 at it through ``AWS_ENDPOINT_URL`` only, and removes
the integrations it added.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import docker
import pytest

from tasks import ecr
from tasks.ecr import forget_logins
from tests.e2e.conftest import CliResult
from tests.support.aws import (
    FAKE_KEY,
    Moto,
    RecordedRequest,
    ecr_hostname,
    moto_ecr_password,
    start_ecr_registry,
    start_moto,
)
from tests.support.leaks import files_written_with, prefect_texts
from tests.support.registry import Registry

pytestmark = pytest.mark.services

Freshflow = Callable[..., CliResult]
Workspace = Callable[[str], Path]

ACCOUNT = "123456789012"
EAST, WEST = "us-east-1", "us-west-2"
EAST_HOST, WEST_HOST = ecr_hostname(ACCOUNT, EAST), ecr_hostname(ACCOUNT, WEST)
STATIC_KEY_ID = "AKIAFRESHFLOWSTATIC1"
STATIC_SECRET = "ecr-Static-Secret-Key-for-freshflow-tests-0042"
INLINE_KEY_ID = "AKIAFRESHFLOWINLINE1"
INLINE_SECRET = "ecr-Inline-Secret-Key-for-freshflow-tests-0077"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/ecr-pusher"
TOKEN_PASSWORD = moto_ecr_password(ACCOUNT)
TOKEN = base64.b64encode(f"AWS:{TOKEN_PASSWORD}".encode()).decode()
AWS_SETTINGS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL_ECR",
    "AWS_ENDPOINT_URL_STS",
)

TO_INTEGRATION = """\
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
    registry: ecr
"""

CROSS_REGION = TO_INTEGRATION + "    region: us-west-2\n"

WITH_ROLE = """\
version: '1.0'
steps:
  build:
    type: build
    image_name: app
    disable_push: true
  as_ci:
    type: push
    candidate: ${{build}}
    tag: ci
    registry: ecr
    role_arn: ROLE
    aws_session_name: ci-push
    aws_duration_seconds: 900
  with_defaults:
    type: push
    candidate: ${{build}}
    tag: defaults
    registry: ecr
    role_arn: ROLE
""".replace("ROLE", ROLE_ARN)

INLINE = """\
version: '1.0'
steps:
  build:
    type: build
    image_name: app
    disable_push: true
  by_provider:
    type: push
    candidate: ${{build}}
    tag: west
    provider: ecr
    accessKeyId: ${{CI_AWS_KEY_ID}}
    secretAccessKey: ${{CI_AWS_SECRET}}
    region: us-west-2
  by_host:
    type: push
    candidate: ${{build}}
    tag: east
    registry: HOST/team
    accessKeyId: ${{CI_AWS_KEY_ID}}
    secretAccessKey: ${{CI_AWS_SECRET}}
    region: ${{CI_AWS_REGION}}
    credentials:
      username: ignored
      password: ignored-for-ecr
""".replace("HOST", EAST_HOST)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    with start_moto(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="module")
def east(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    workdir = tmp_path_factory.mktemp("ecr-east")
    with start_ecr_registry(workdir, ACCOUNT, EAST, "127.0.0.2", TOKEN_PASSWORD) as r:
        yield r


@pytest.fixture(scope="module")
def west(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    workdir = tmp_path_factory.mktemp("ecr-west")
    with start_ecr_registry(workdir, ACCOUNT, WEST, "127.0.0.3", TOKEN_PASSWORD) as r:
        yield r


@pytest.fixture
def aws(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> Iterator[Moto]:
    """Moto, reset, as the only AWS the run can reach; no machine AWS settings."""
    moto.reset()
    for name in AWS_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    forget_logins()
    yield moto
    forget_logins()


@pytest.fixture
def add_ecr(freshflow: Freshflow) -> Iterator[Callable[..., CliResult]]:
    """`freshflow registry add-ecr ecr ...`; every integration is removed after."""
    from blocks.store import list_integrations, remove

    def add(*options: str, secret: str | None = None) -> CliResult:
        args = ["registry", "add-ecr", "ecr", *options]
        if secret is not None:
            args.append("--secret-stdin")
        result = freshflow(*args, stdin=secret)
        assert result.exit_code == 0, result.stderr
        return result

    yield add
    for name in list_integrations():
        remove(name)


def create_repository(moto: Moto, region: str, name: str) -> None:
    _ecr_client(moto, region).create_repository(repositoryName=name)


def repositories(moto: Moto, region: str) -> list[str]:
    found = _ecr_client(moto, region).describe_repositories()["repositories"]
    return sorted(repository["repositoryName"] for repository in found)


def _ecr_client(moto: Moto, region: str) -> Any:
    return boto3.client(
        "ecr",
        endpoint_url=moto.endpoint_url,
        region_name=region,
        aws_access_key_id=FAKE_KEY,
        aws_secret_access_key=FAKE_KEY,
    )


def pipeline(workspace: Workspace, text: str, image: str) -> Path:
    """`text` as codefresh.yml, building `image`: each test pushes its own."""
    return workspace(text.replace("image_name: app", f"image_name: {image}"))


def run(freshflow: Freshflow, path: Path) -> CliResult:
    return freshflow("run", str(path), "--branch", "main", "--json")


def step_of(result: CliResult, step: str) -> dict[str, Any]:
    steps = result.json()["steps"]
    assert isinstance(steps, dict)
    found: dict[str, Any] = steps[step]
    return found


def assert_pushed(result: CliResult, step: str, registry: Registry, repo: str) -> None:
    """The step reported pushes to `registry`, which serves those digests."""
    pushed = step_of(result, step)["pushed"]
    assert pushed, result.stdout
    for pinned in pushed:
        reference, _, digest = pinned.partition("@")
        name, _, tag = reference.rpartition(":")
        assert name == f"{registry.host}/{repo}"
        assert registry.manifest_digest(repo, tag) == digest


def aws_calls(moto: Moto, action: str | None = None) -> list[RecordedRequest]:
    """What freshflow asked of AWS; the tests' own set-up calls are left out."""
    return [
        call
        for call in moto.requests()
        if call.access_key_id != FAKE_KEY and action in (None, call.action)
    ]


@pytest.mark.parametrize("account", ["given", "looked-up"])
def test_static_keys_integration_push(
    freshflow: Freshflow,
    workspace: Workspace,
    aws: Moto,
    east: Registry,
    add_ecr: Callable[..., CliResult],
    account: str,
) -> None:
    image = f"static-{account}"
    create_repository(aws, EAST, image)
    options = ["--region", EAST, "--access-key-id", STATIC_KEY_ID]
    options += ["--account", ACCOUNT] if account == "given" else []
    added = add_ecr(*options, secret=STATIC_SECRET)
    result = run(freshflow, pipeline(workspace, TO_INTEGRATION, image))

    assert f"({EAST_HOST})" in added.stdout
    assert result.exit_code == 0, result.stdout + result.stderr
    assert east.tags(image) == ["latest", "v1"]
    assert_pushed(result, "push", east, image)
    [token_call] = aws_calls(aws, "GetAuthorizationToken")
    assert (token_call.access_key_id, token_call.region) == (STATIC_KEY_ID, EAST)
    identity_calls = aws_calls(aws, "GetCallerIdentity")
    assert len(identity_calls) == (0 if account == "given" else 1)


def test_chain_credentials_and_account_from_the_login(
    freshflow: Freshflow,
    workspace: Workspace,
    aws: Moto,
    east: Registry,
    add_ecr: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFRESHFLOWCHAIN01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_KEY)
    create_repository(aws, EAST, "chain")
    added = add_ecr("--region", EAST)
    result = run(freshflow, pipeline(workspace, TO_INTEGRATION, "chain"))

    assert "unknown-account" in added.stdout  # nothing asked of AWS yet
    assert result.exit_code == 0, result.stdout + result.stderr
    assert_pushed(result, "push", east, "chain")
    [token_call] = aws_calls(aws, "GetAuthorizationToken")
    assert token_call.access_key_id == "AKIAFRESHFLOWCHAIN01"


def test_cross_region_push(
    freshflow: Freshflow,
    workspace: Workspace,
    aws: Moto,
    east: Registry,
    west: Registry,
    add_ecr: Callable[..., CliResult],
) -> None:
    create_repository(aws, WEST, "cross")
    add_ecr(
        "--region",
        EAST,
        "--account",
        EAST_HOST,
        "--access-key-id",
        STATIC_KEY_ID,
        secret=STATIC_SECRET,
    )
    path = pipeline(workspace, CROSS_REGION, "cross")
    plan = freshflow("plan", str(path), "--branch", "main", "--json")
    result = run(freshflow, path)

    assert step_of(plan, "push")["pushes"] == [
        f"{WEST_HOST}/cross:v1",
        f"{WEST_HOST}/cross:latest",
    ]
    assert result.exit_code == 0, result.stdout + result.stderr
    assert west.tags("cross") == ["latest", "v1"]
    assert east.tags("cross") == []
    assert_pushed(result, "push", west, "cross")
    regions = {call.region for call in aws_calls(aws) if call.service == "ecr"}
    assert regions == {WEST}


def test_role_arn_push_reaches_sts_with_session_and_duration(
    freshflow: Freshflow,
    workspace: Workspace,
    aws: Moto,
    east: Registry,
    add_ecr: Callable[..., CliResult],
) -> None:
    create_repository(aws, EAST, "role")
    add_ecr(
        "--region",
        EAST,
        "--account",
        ACCOUNT,
        "--access-key-id",
        STATIC_KEY_ID,
        secret=STATIC_SECRET,
    )
    result = run(freshflow, pipeline(workspace, WITH_ROLE, "role"))

    assert result.exit_code == 0, result.stdout + result.stderr
    calls = [
        (c.role_arn, c.session_name, c.duration_seconds, c.access_key_id)
        for c in aws.assume_role_calls()
    ]
    assert calls == [
        (ROLE_ARN, "ci-push", 900, STATIC_KEY_ID),
        (ROLE_ARN, "default-session-name", 3600, STATIC_KEY_ID),
    ]
    signers = [r.access_key_id or "" for r in aws_calls(aws, "GetAuthorizationToken")]
    assert len(signers) == 2
    assert all(key.startswith("ASIA") for key in signers)  # the role's keys
    assert east.tags("role") == ["ci", "defaults"]
    assert_pushed(result, "as_ci", east, "role")
    assert_pushed(result, "with_defaults", east, "role")


def test_inline_ecr_keys(
    freshflow: Freshflow,
    workspace: Workspace,
    aws: Moto,
    east: Registry,
    west: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI_AWS_KEY_ID", INLINE_KEY_ID)
    monkeypatch.setenv("CI_AWS_SECRET", INLINE_SECRET)
    monkeypatch.setenv("CI_AWS_REGION", EAST)
    create_repository(aws, WEST, "inline")
    create_repository(aws, EAST, "team/inline")
    result = run(freshflow, pipeline(workspace, INLINE, "inline"))

    assert result.exit_code == 0, result.stdout + result.stderr
    assert "`credentials` are ignored for Amazon ECR" in result.stderr
    assert west.tags("inline") == ["west"]
    assert east.tags("team/inline") == ["east"]
    assert_pushed(result, "by_provider", west, "inline")
    assert_pushed(result, "by_host", east, "team/inline")
    signers = {call.access_key_id for call in aws_calls(aws)}
    assert signers == {INLINE_KEY_ID}


def test_missing_repository_fails_until_create_repositories(
    freshflow: Freshflow,
    workspace: Workspace,
    aws: Moto,
    east: Registry,
    add_ecr: Callable[..., CliResult],
) -> None:
    path = pipeline(workspace, TO_INTEGRATION, "fresh/app")
    options = ("--region", EAST, "--account", ACCOUNT, "--access-key-id", STATIC_KEY_ID)
    add_ecr(*options, secret=STATIC_SECRET)
    refused = run(freshflow, path)

    assert refused.exit_code == 1
    step = step_of(refused, "push")
    assert step["result"] == "failure"
    assert step["pushed"] == []
    reason = str(step["reason"])
    assert (
        f"ECR repository 'fresh/app' does not exist in account {ACCOUNT}, region 'us-east-1'"
        in reason
    )
    assert (
        "aws ecr create-repository --repository-name fresh/app --region us-east-1"
        in reason
    )
    assert "--create-repositories" in reason
    assert east.tags("fresh/app") == []

    add_ecr(*options, "--create-repositories", secret=STATIC_SECRET)
    created = run(freshflow, path)

    assert created.exit_code == 0, created.stdout + created.stderr
    assert repositories(aws, EAST) == ["fresh/app"]
    assert east.tags("fresh/app") == ["latest", "v1"]


def test_refused_login_is_fetched_once_more(
    freshflow: Freshflow,
    workspace: Workspace,
    aws: Moto,
    east: Registry,
    add_ecr: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token the registry no longer accepts: moto cannot issue one, so the
    first login it answers is spoiled on the way in."""
    real = ecr._parse_authorization
    logins: list[ecr.EcrLogin] = []

    def spoil_first(data: dict[str, Any], region: str) -> ecr.EcrLogin:
        login = real(data, region)
        if not logins:
            revoked = dataclasses.replace(login.auth, password="revoked-token")
            login = dataclasses.replace(login, auth=revoked)
        logins.append(login)
        return login

    monkeypatch.setattr(ecr, "_parse_authorization", spoil_first)
    create_repository(aws, EAST, "refused")
    add_ecr(
        "--region",
        EAST,
        "--account",
        ACCOUNT,
        "--access-key-id",
        STATIC_KEY_ID,
        secret=STATIC_SECRET,
    )
    result = run(freshflow, pipeline(workspace, TO_INTEGRATION, "refused"))

    assert result.exit_code == 0, result.stdout + result.stderr
    assert len(aws_calls(aws, "GetAuthorizationToken")) == 2
    assert east.tags("refused") == ["latest", "v1"]
    assert_pushed(result, "push", east, "refused")


def test_candidate_is_pulled_from_ecr_and_promoted_to_another_region(
    freshflow: Freshflow,
    workspace: Workspace,
    aws: Moto,
    east: Registry,
    west: Registry,
    add_ecr: Callable[..., CliResult],
    docker_client: docker.DockerClient,
) -> None:
    for region in (EAST, WEST):
        create_repository(aws, region, "promo")
    add_ecr(
        "--region",
        EAST,
        "--account",
        ACCOUNT,
        "--access-key-id",
        STATIC_KEY_ID,
        secret=STATIC_SECRET,
    )
    built = run(freshflow, pipeline(workspace, TO_INTEGRATION, "promo"))
    assert built.exit_code == 0, built.stdout + built.stderr
    for tag in ("v1", "latest"):
        docker_client.images.remove(f"{EAST_HOST}/promo:{tag}")  # the tag only
    promote = f"version: '1.0'\nsteps:\n  promote:\n    type: push\n    candidate: {EAST_HOST}/promo:v1\n    tag: promoted\n    registry: ecr\n    region: us-west-2\n"
    result = run(freshflow, workspace(promote))

    assert result.exit_code == 0, result.stdout + result.stderr
    assert west.tags("promo") == ["promoted"]
    assert_pushed(result, "promote", west, "promo")
    pulled = west.manifest_digest("promo", "promoted")
    assert pulled == east.manifest_digest("promo", "v1")
    tokens = [call.region for call in aws_calls(aws, "GetAuthorizationToken")]
    # The build's push, the pull, the push to the west, and reading the
    # layers from the east for the copy.
    assert tokens == [EAST, EAST, WEST, EAST]


def test_missing_aws_credentials_are_the_step_reason(
    freshflow: Freshflow,
    workspace: Workspace,
    aws: Moto,
    add_ecr: Callable[..., CliResult],
) -> None:
    add_ecr("--region", EAST, "--account", ACCOUNT)  # no keys, and no chain
    result = run(freshflow, pipeline(workspace, TO_INTEGRATION, "nokeys"))

    assert result.exit_code == 1
    step = step_of(result, "push")
    assert step["result"] == "failure"
    assert str(step["reason"]).startswith(
        "no AWS credentials found for GetAuthorizationToken: set the access key ID"
    )
    assert aws_calls(aws) == []


def test_validate_reports_ecr_mistakes_with_locations(
    freshflow: Freshflow, workspace: Workspace
) -> None:
    text = """\
version: '1.0'
steps:
  bad_role:
    type: push
    candidate: app:1
    provider: ecr
    region: us-east-1
    role_arn: arn:aws:iam::12345:role/pusher
    aws_duration_seconds: 3601
  no_role:
    type: push
    candidate: app:1
    registry: 127.0.0.1:5000
    region: us-west-2
    aws_duration_seconds: 899
"""
    path = workspace(text)
    result = freshflow("validate", str(path))

    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines == [
        f"{path}:8:15: step 'bad_role': role_arn 'arn:aws:iam::12345:role/pusher' is not an IAM role ARN; write arn:aws:iam::<12-digit account>:role/<name>",
        f"{path}:9:27: step 'bad_role': aws_duration_seconds is 3601; it must be between 900 and 3600",
        f"{path}:14:5: step 'no_role': `region` is only for Amazon ECR registries (cross-region pushes are supported only for ECR); remove it or push to an ECR integration",
        f"{path}:15:5: step 'no_role': aws_duration_seconds only applies when assuming a role; add role_arn or remove it",
    ]


def test_no_aws_secret_or_token_reaches_prefect(
    freshflow: Freshflow,
    workspace: Workspace,
    aws: Moto,
    east: Registry,
    west: Registry,
    add_ecr: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Static, role and inline runs; then their logs, parameters and files."""
    started = time.time()
    monkeypatch.setenv("CI_AWS_KEY_ID", INLINE_KEY_ID)
    monkeypatch.setenv("CI_AWS_SECRET", INLINE_SECRET)
    monkeypatch.setenv("CI_AWS_REGION", EAST)
    for region, name in ((EAST, "scan"), (WEST, "scan"), (EAST, "team/scan")):
        create_repository(aws, region, name)
    add_ecr("--region", EAST, "--access-key-id", STATIC_KEY_ID, secret=STATIC_SECRET)
    results = [
        run(freshflow, pipeline(workspace, text, "scan"))
        for text in (TO_INTEGRATION, WITH_ROLE, INLINE)
    ]

    assert [r.exit_code for r in results] == [0, 0, 0], [r.stderr for r in results]
    texts = prefect_texts([str(r.json()["flow_run_id"]) for r in results])
    secrets = (STATIC_SECRET, INLINE_SECRET, TOKEN_PASSWORD, TOKEN)
    for secret in secrets:
        assert not [t for t in texts if secret in t], secret
    assert files_written_with(Path(os.environ["PREFECT_HOME"]), secrets, started) == []
    assert files_written_with(Path.home(), secrets[:2], started) == []
