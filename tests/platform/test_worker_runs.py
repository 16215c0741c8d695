"""Deployments run by a process worker, end to end, on the PostgreSQL server.

`freshflow deploy` a pipeline that builds an image and pushes it to a TLS
registry with htpasswd auth and to an ECR stand-in (moto for STS and ECR, a
TLS registry answering as the ECR host); both integrations are blocks on
that server.  A
run is triggered through the API (`run_deployment`) and the worker runs it.
The tests then look at what people see: the registry, the run's state and
artifacts, its task runs; and at what nobody may see: the password, in the
PostgreSQL database or the worker's output.
"""

from __future__ import annotations

import base64
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from flows.report import SUCCESS_MESSAGE
from tests.platform.conftest import Platform
from tests.support.aws import ecr_hostname, moto_ecr_password, start_ecr_registry
from tests.support.registry import Registry, start_registry
from tests.support.services import REPO_ROOT

pytestmark = pytest.mark.services

USER = "platform-pusher"
PASSWORD = f"Pl4tform-pa55-{secrets.token_hex(6)}"
REPOSITORY = f"platform/app-{secrets.token_hex(3)}"
ACCOUNT, REGION = "123456789012", "eu-west-1"  # other e2e tests use us-*
ECR_ADDRESS = "127.0.0.4"
ECR_KEY_ID = "AKIAFRESHFLOWPLATFORM"
ECR_SECRET = f"ecr-Platform-Secret-{secrets.token_hex(8)}"
TOKEN_PASSWORD = moto_ecr_password(ACCOUNT)
TOKEN = base64.b64encode(f"AWS:{TOKEN_PASSWORD}".encode()).decode()

PIPELINE = f"""\
version: '1.0'
stages: [compile, ship]
steps:
  build:
    title: Build the image
    stage: compile
    type: build
    image_name: {REPOSITORY}
    disable_push: true
  push:
    title: Push to the secure registry
    stage: ship
    type: push
    candidate: ${{{{build}}}}
    tags: [v1, ${{{{CF_BRANCH}}}}]
    registry: secure
  push_ecr:
    title: Push to ECR
    stage: ship
    type: push
    candidate: ${{{{build}}}}
    tags: [v1]
    registry: ecr
"""

BUILD_ONLY = f"""\
version: '1.0'
steps:
  build:
    type: build
    image_name: {REPOSITORY}-yaml
    disable_push: true
"""


@dataclass(frozen=True)
class WorkerRun:
    """One deployment run by the worker, and where it pushed."""

    flow_run: Any
    registry: Registry
    ecr: Registry
    deploy_output: str


def _checkout(root: Path, pipeline: str, base_image: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(f"FROM {base_image}\nCOPY marker /marker\n")
    (root / "marker").write_text(secrets.token_hex(8))
    path = root / "codefresh.yml"
    path.write_text(pipeline)
    return path


@pytest.fixture(scope="module", autouse=True)
def _remove_built_images(docker_client: docker.DockerClient) -> Iterator[None]:
    """The worker's builds and pushes leave tags in the engine: remove them."""
    yield
    for image in docker_client.images.list():
        for tag in image.tags:
            if REPOSITORY in tag:
                docker_client.images.remove(tag, force=True)


@pytest.fixture(scope="module")
def worker_run(
    platform_api: Platform,
    base_image: str,
    tmp_path_factory: pytest.TempPathFactory,
    freshflow_platform: Callable[..., tuple[int, str]],
) -> Iterator[WorkerRun]:
    """Deploy the pipeline with `freshflow deploy`; run it once on the worker."""
    from prefect.deployments import run_deployment
    from pydantic import SecretStr

    from blocks.registry import DockerRegistry, EcrRegistry
    from blocks.store import save

    work = tmp_path_factory.mktemp("worker-run")
    registry = start_registry(work / "registry", tls=True, auth=(USER, PASSWORD))
    ecr = start_ecr_registry(work / "ecr", ACCOUNT, REGION, ECR_ADDRESS, TOKEN_PASSWORD)
    try:
        secure = DockerRegistry(
            domain=registry.host, username=USER, password=SecretStr(PASSWORD)
        )
        save("secure", secure)
        amazon = EcrRegistry(
            region=REGION,
            account_id=ACCOUNT,
            access_key_id=ECR_KEY_ID,
            secret_access_key=SecretStr(ECR_SECRET),
            create_repositories=True,
        )
        save("ecr", amazon)
        pipeline = _checkout(work / "checkout", PIPELINE, base_image)
        code, output = freshflow_platform(
            "deploy", str(pipeline), "--name", "e2e", "--branch", "main"
        )
        assert code == 0, output
        flow_run = run_deployment(
            "codefresh-pipeline/e2e", timeout=240, poll_interval=1
        )
        _wait_for_last_log(flow_run.id)
        yield WorkerRun(flow_run, registry, ecr, output)
    finally:
        registry.stop()
        ecr.stop()


def _flow_run_logs(flow_run_id: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    only_this_run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    with get_client(sync_client=True) as client:
        return client.read_logs(log_filter=only_this_run)


def _wait_for_last_log(flow_run_id: Any, timeout: float = 30) -> None:
    """The state is final before the run's process sends its last logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = _flow_run_logs(flow_run_id)
        if any(
            log.task_run_id is None and log.message.startswith("Finished in state")
            for log in logs
        ):
            return
        time.sleep(0.5)


def test_the_worker_pushes_the_image(worker_run: WorkerRun) -> None:
    assert worker_run.flow_run.state.is_completed(), worker_run.flow_run.state
    assert worker_run.registry.tags(REPOSITORY) == ["main", "v1"]
    assert worker_run.ecr.host == ecr_hostname(ACCOUNT, REGION)
    assert worker_run.ecr.tags(REPOSITORY) == ["v1"]


def test_the_state_message_is_the_build_status(worker_run: WorkerRun) -> None:
    assert worker_run.flow_run.state.message == SUCCESS_MESSAGE


def test_parameters_name_the_pipeline_not_secrets(worker_run: WorkerRun) -> None:
    parameters = worker_run.flow_run.parameters
    assert parameters["pipeline_file"].endswith("checkout/codefresh.yml")
    assert parameters["branch"] == "main"
    assert (
        "deployment 'codefresh-pipeline/e2e' saved on pool" in worker_run.deploy_output
    )


def test_artifacts_are_readable_through_the_client(worker_run: WorkerRun) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    flow_run_id = worker_run.flow_run.id
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
            )
        )
    by_key = {artifact.key: artifact for artifact in artifacts}
    status = by_key["freshflow-build-status"]
    assert SUCCESS_MESSAGE in str(status.data)
    pushed = str(by_key["freshflow-pushed-images"].data)
    assert f"{worker_run.registry.host}/{REPOSITORY}:v1" in pushed
    progress = by_key["freshflow-push-push"]
    assert progress.type == "progress"
    assert float(progress.data) == 100.0


def test_each_step_is_a_task_run_named_and_tagged(worker_run: WorkerRun) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    only_this_run = FlowRunFilter(id=FlowRunFilterId(any_=[worker_run.flow_run.id]))
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=only_this_run)
    tags = {run.name: set(run.tags) for run in task_runs}
    assert tags == {
        "Build the image": {"compile", "build"},
        "Push to the secure registry": {"ship", "push"},
        "Push to ECR": {"ship", "push"},
    }


def test_logs_say_one_line_per_pushed_tag(worker_run: WorkerRun) -> None:
    logs = _flow_run_logs(worker_run.flow_run.id)
    pushed = [log.message for log in logs if log.message.startswith("pushed ")]
    assert len(pushed) == 3, [log.message for log in logs]
    assert not [log for log in logs if log.level < 20 and "Pushing" in log.message]


def test_no_secret_in_the_database_or_the_worker_output(
    worker_run: WorkerRun, platform_api: Platform
) -> None:
    """Logs, artifacts, parameters, states, blocks: all of PostgreSQL."""
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    secrets_used = (PASSWORD, basic, ECR_SECRET, TOKEN_PASSWORD, TOKEN)
    dump = platform_api.dump_database()
    assert f"{worker_run.registry.host}/{REPOSITORY}:v1" in dump  # logs, artifacts
    output = platform_api.worker_log.read_text()
    assert f"pushed {worker_run.ecr.host}/{REPOSITORY}:v1" in output
    for secret in secrets_used:
        assert secret not in dump
        assert secret not in output


def test_prefect_yaml_deploys_and_its_pull_step_finds_the_checkout(
    worker_run: WorkerRun,
    platform_api: Platform,
    base_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`prefect deploy --all` reads prefect.yaml; a run starts in the checkout."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    result = subprocess.run(
        [str(REPO_ROOT / ".venv/bin/prefect"), "--no-prompt", "deploy", "--all"],
        cwd=REPO_ROOT,
        env=platform_api.script_env | {"PREFECT_API_URL": platform_api.api_url},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("codefresh-pipeline/multi-tag")
    assert deployment.work_pool_name == "freshflow"
    assert deployment.parameters["pipeline_file"] == "examples/multi-tag/codefresh.yml"
    assert deployment.pull_steps == [
        {
            "prefect.deployments.steps.set_working_directory": {
                "directory": "{{ $FRESHFLOW_CHECKOUT }}"
            }
        }
    ]
    assert sorted(str(s.schedule) for s in deployment.schedules)
    assert not any(s.active for s in deployment.schedules)

    pipeline = _checkout(tmp_path_factory.mktemp("yaml-run"), BUILD_ONLY, base_image)
    started = time.monotonic()
    flow_run = run_deployment(
        "codefresh-pipeline/multi-tag",
        parameters={"pipeline_file": str(pipeline)},
        timeout=240,
        poll_interval=1,
    )
    assert flow_run.state.is_completed(), (flow_run.state, time.monotonic() - started)
