"""The registry-API push path: what it uploads, what the registry then holds.

Bytes are counted by a proxy in front of a real registry
(tests/support/proxy.py); images are checked by pulling them back through
the real engine.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from uuid import UUID

import docker
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import Log
from prefect.logging.handlers import APILogWorker

from tests.e2e.conftest import CliResult
from tests.support.images import build_test_image, remove_images
from tests.support.proxy import ThrottlingProxy
from tests.support.registry import MANIFEST_MEDIA_TYPES, Registry

PAYLOAD = 1_000_000

PUSH = """\
version: '1.0'
steps:
  push:
    type: push
    candidate: {candidate}
    image_name: team/app
    registry: {registry}
    tags: [{tags}]
"""


@pytest.fixture
def payload_image(docker_client: docker.DockerClient, base_image: str) -> Iterator[str]:
    """A local image with a 1 MB incompressible layer; yields its reference."""
    reference = f"freshflow-test/payload:{time.time_ns()}"
    build_test_image(docker_client, reference, reference, payload_bytes=PAYLOAD)
    yield reference
    remove_images(docker_client, reference)


@pytest.fixture
def big_image(docker_client: docker.DockerClient, base_image: str) -> Iterator[str]:
    """A local image with a 3 MB incompressible layer; yields its reference."""
    reference = f"freshflow-test/big:{time.time_ns()}"
    build_test_image(docker_client, reference, reference, payload_bytes=3_000_000)
    yield reference
    remove_images(docker_client, reference)


@pytest.fixture
def counted(
    registry_factory, integrations
) -> Iterator[tuple[Registry, ThrottlingProxy]]:
    """A registry behind a counting proxy, as the integration `counted`."""
    registry = registry_factory("counted")
    with ThrottlingProxy("127.0.0.1", registry.port) as proxy:
        integrations("counted", registry, host=proxy.host)
        yield registry, proxy


def push(
    freshflow: Callable[..., CliResult],
    workspace: Callable[[str], object],
    candidate: str,
    tags: str,
    registry: str = "counted",
) -> CliResult:
    pipeline = PUSH.format(candidate=candidate, registry=registry, tags=tags)
    return freshflow("run", str(workspace(pipeline)), "--json")


def pushed(result: CliResult, step: str = "push") -> dict[str, str]:
    """`tag -> digest` of what the step reported."""
    steps = result.json()["steps"]
    assert isinstance(steps, dict)
    return {
        ref.split("@")[0].rsplit(":", 1)[1]: ref.split("@")[1]
        for ref in steps[step]["pushed"]
    }


def cut_after(proxy: ThrottlingProxy, uploaded: int, *, for_good: bool) -> None:
    """Cut the proxy's connections once `uploaded` bytes went through.

    `for_good` also refuses every later connection, as a registry that is gone.
    """

    def cut() -> None:
        limit = time.monotonic() + 30
        while proxy.bytes_uploaded < uploaded and time.monotonic() < limit:
            time.sleep(0.02)
        if for_good:
            proxy.refuse()
        proxy.drop_connections()

    threading.Thread(target=cut, daemon=True).start()


def run_logs(flow_run_id: str) -> list[Log]:
    """The logs Prefect keeps for a flow run."""
    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        return client.read_logs(
            log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[UUID(flow_run_id)])
            )
        )


def manifest(registry: Registry, repository: str, tag: str) -> dict[str, object]:
    response = registry._request(
        "GET",
        f"/v2/{repository}/manifests/{tag}",
        headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)},
    )
    response.raise_for_status()
    document = json.loads(response.content)
    assert isinstance(document, dict)
    return document


def test_tags_share_one_upload_and_pull_back_as_the_same_image(
    freshflow, workspace, counted, payload_image, docker_client
) -> None:
    registry, proxy = counted
    image_id = docker_client.images.get(payload_image).id

    result = push(freshflow, workspace, payload_image, "v1, v2, latest")

    assert result.exit_code == 0, result.stderr + result.stdout
    digests = pushed(result)
    assert sorted(digests) == ["latest", "v1", "v2"]
    assert len(set(digests.values())) == 1
    for tag, digest in digests.items():
        assert registry.manifest_digest("team/app", tag) == digest
    document = manifest(registry, "team/app", "v1")
    assert document["config"]["digest"] == image_id  # type: ignore[index]
    # Three tags, one upload of each blob (plus HTTP requests and manifests).
    blobs = document["config"]["size"] + sum(  # type: ignore[index]
        layer["size"]
        for layer in document["layers"]  # type: ignore[attr-defined]
    )
    assert blobs > PAYLOAD
    assert blobs <= proxy.bytes_uploaded < blobs + 30_000

    # The engine pulls it back, checking every layer, as the very same image.
    reference = f"{registry.host}/team/app:v2"
    remove_images(docker_client, payload_image)
    try:
        pulled = docker_client.images.pull(reference)
        assert pulled.id == image_id
    finally:
        remove_images(docker_client, reference)


def test_a_second_push_uploads_no_layer(
    freshflow, workspace, counted, payload_image
) -> None:
    registry, proxy = counted
    first = push(freshflow, workspace, payload_image, "one")
    assert first.exit_code == 0, first.stderr + first.stdout
    before = proxy.bytes_uploaded

    second = push(freshflow, workspace, payload_image, "two")

    assert second.exit_code == 0, second.stderr + second.stdout
    assert registry.tags("team/app") == ["one", "two"]
    assert pushed(second)["two"] == pushed(first)["one"]
    assert proxy.bytes_uploaded - before < 20_000  # checks and a manifest


def test_the_same_image_has_one_digest_in_every_registry(
    freshflow, workspace, registry_factory, integrations, payload_image
) -> None:
    first, second = registry_factory("first"), registry_factory("second")
    integrations("first", first)
    integrations("second", second)
    pipeline = PUSH.format(candidate=payload_image, registry="first", tags="v1") + (
        f"  push_again:\n    type: push\n    candidate: {payload_image}\n"
        "    image_name: team/app\n    registry: second\n    tag: v1\n"
    )

    result = freshflow("run", str(workspace(pipeline)), "--json")

    assert result.exit_code == 0, result.stderr + result.stdout
    assert pushed(result)["v1"] == pushed(result, "push_again")["v1"]
    assert first.manifest_digest("team/app", "v1") == second.manifest_digest(
        "team/app", "v1"
    )


def test_the_engine_path_on_request(
    freshflow, workspace, counted, payload_image, monkeypatch
) -> None:
    registry, _proxy = counted
    monkeypatch.setenv("FRESHFLOW_PUSH_VIA", "engine")

    result = push(freshflow, workspace, payload_image, "v1, v2")

    assert result.exit_code == 0, result.stderr + result.stdout
    assert registry.tags("team/app") == ["v1", "v2"]
    assert registry.manifest_digest("team/app", "v1") == pushed(result)["v1"]


def test_a_bad_push_setting_is_named(
    freshflow, workspace, counted, payload_image, monkeypatch
) -> None:
    registry, _proxy = counted
    monkeypatch.setenv("FRESHFLOW_PUSH_CONCURRENCY", "0")

    result = push(freshflow, workspace, payload_image, "v1")

    assert result.exit_code == 1
    reason = result.json()["steps"]["push"]["reason"]  # type: ignore[index]
    assert "FRESHFLOW_PUSH_CONCURRENCY" in reason
    assert "Traceback" not in result.stdout + result.stderr
    assert registry.tags("team/app") == []


def test_a_registry_lost_mid_upload_fails_the_step_and_writes_no_tag(
    freshflow, workspace, registry_factory, integrations, big_image
) -> None:
    registry = registry_factory("lost")
    with ThrottlingProxy("127.0.0.1", registry.port, bytes_per_second=300_000) as proxy:
        integrations("lost", registry, host=proxy.host)
        cut_after(proxy, 500_000, for_good=True)
        result = push(freshflow, workspace, big_image, "v1", registry="lost")

    assert result.exit_code == 1
    step = result.json()["steps"]["push"]  # type: ignore[index]
    assert step["result"] == "failure"
    assert "cannot be reached" in step["reason"] or "connection" in step["reason"]
    assert step["pushed"] == []
    assert registry.tags("team/app") == []


def test_promotion_within_a_registry_mounts_the_layers(
    freshflow, workspace, counted, payload_image, docker_client
) -> None:
    registry, proxy = counted
    first = push(freshflow, workspace, payload_image, "rc1")
    assert first.exit_code == 0, first.stderr + first.stdout
    source = f"{proxy.host}/team/app:rc1"
    remove_images(docker_client, payload_image)
    docker_client.images.pull(source)  # the candidate now comes from the registry
    before = proxy.bytes_uploaded
    pipeline = (
        "version: '1.0'\nsteps:\n  promote:\n    type: push\n"
        f"    candidate: {source}\n    image_name: prod/app\n"
        "    registry: counted\n    tag: '1.0'\n"
    )
    try:
        result = freshflow("run", str(workspace(pipeline)), "--json")
    finally:
        remove_images(docker_client, source)

    assert result.exit_code == 0, result.stderr + result.stdout
    assert registry.manifest_digest("prod/app", "1.0") == pushed(first)["rc1"]
    assert proxy.bytes_uploaded - before < 20_000  # mounts, not uploads


def test_a_new_repository_mounts_the_layers_another_one_holds(
    freshflow, workspace, counted, payload_image
) -> None:
    registry, proxy = counted
    first = push(freshflow, workspace, payload_image, "v1")
    assert first.exit_code == 0, first.stderr + first.stdout
    before = proxy.bytes_uploaded

    pipeline = PUSH.format(candidate=payload_image, registry="counted", tags="v1")
    second = freshflow(
        "run", str(workspace(pipeline.replace("team/app", "team/copy"))), "--json"
    )

    assert second.exit_code == 0, second.stderr + second.stdout
    assert registry.tags("team/copy") == ["v1"]
    assert pushed(second)["v1"] == pushed(first)["v1"]
    assert proxy.bytes_uploaded - before < 20_000  # mounts and a manifest


def test_a_connection_cut_mid_upload_is_tried_again_and_the_push_succeeds(
    freshflow, workspace, registry_factory, integrations, docker_client, big_image
) -> None:
    image_id = docker_client.images.get(big_image).id
    registry = registry_factory("flaky")
    with ThrottlingProxy(
        "127.0.0.1", registry.port, bytes_per_second=1_000_000
    ) as proxy:
        integrations("flaky", registry, host=proxy.host)
        cut_after(proxy, 500_000, for_good=False)
        result = push(freshflow, workspace, big_image, "v1", registry="flaky")
        uploaded = proxy.bytes_uploaded
    remove_images(docker_client, big_image)  # so the pull below fetches it

    assert result.exit_code == 0, result.stderr + result.stdout
    retries = [
        log
        for log in run_logs(str(result.json()["flow_run_id"]))
        if "trying again in 1s (attempt 2 of 3)" in log.message
    ]
    assert retries  # in the Prefect UI, not only on the worker's console
    assert all(log.task_run_id is not None for log in retries)
    assert registry.tags("team/app") == ["v1"]
    assert uploaded > 3_000_000 + 400_000  # the cut upload was sent again
    pulled = docker_client.images.pull(f"{registry.host}/team/app:v1")
    try:
        assert pulled.id == image_id
    finally:
        remove_images(docker_client, f"{registry.host}/team/app:v1")
