"""Retry, timeout, parallel steps, fail_fast rules and `mode: parallel`.

Faults come from real services: a registry that is down, or a throttling
proxy in front of a real registry (tests/support/proxy.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.conftest import CliResult
from tests.support.images import build_test_image, remove_images
from tests.support.proxy import ThrottlingProxy
from tests.support.registry import Registry, start_registry

BUILD = """\
version: '1.0'
{root}steps:
  build:
    type: build
    image_name: app
    disable_push: true
"""


class _Lines(logging.Handler):
    """Collects task-run log lines with their times, and calls back on a match."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[float, str]] = []
        self.triggers: list[tuple[str, Callable[[], None]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.lines.append((time.monotonic(), message))
        for text, action in list(self.triggers):
            if text in message:
                self.triggers.remove((text, action))
                threading.Thread(target=action, daemon=True).start()


@pytest.fixture
def task_logs() -> Iterator[_Lines]:
    handler = _Lines()
    logger = logging.getLogger("prefect.task_runs")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def run(freshflow: Callable[..., CliResult], path: object) -> CliResult:
    result = freshflow("run", str(path), "--branch", "main", "--json")
    assert result.exit_code in (0, 1), result.stderr
    return result


def test_retry_after_two_failures(
    freshflow, workspace, registry_factory, integrations, task_logs, tmp_path
) -> None:
    registry = registry_factory()
    port = registry.port
    registry.stop()  # down for the first two attempts
    integrations("flaky", registry)
    restarted: list[Registry] = []
    task_logs.triggers.append(
        (
            "(attempt 2)",
            lambda: (
                time.sleep(0.3),
                restarted.append(start_registry(tmp_path / "again", port=port)),
            ),
        )
    )
    pipeline = BUILD.format(root="") + (
        "  push:\n    type: push\n    candidate: ${{build}}\n    registry: flaky\n"
        "    tags: [attempt-${{CF_CURRENT_ATTEMPT}}-of-${{CF_MAX_ATTEMPTS}}]\n"
        "    retry: {maxAttempts: 3, delay: 1, exponentialFactor: 3}\n"
    )
    try:
        result = run(freshflow, workspace(pipeline))
        assert result.exit_code == 0, result.stdout
        assert restarted
        assert restarted[0].tags("app") == ["attempt-3-of-3"]
    finally:
        for again in restarted:
            again.stop()
    step = result.json()["steps"]["push"]  # type: ignore[index]
    assert step["attempts"] == 3
    starts = [t for t, line in task_logs.lines if line.startswith("pushing ")]
    assert len(starts) == 3
    first_gap, second_gap = starts[1] - starts[0], starts[2] - starts[1]
    assert 0.9 <= first_gap <= 3.0  # delay 1 * 3**0
    assert 2.9 <= second_gap <= 6.0  # delay 1 * 3**1


@pytest.fixture
def slow_image(docker_client, base_image) -> Iterator[str]:
    """A local image with a 3 MB incompressible layer."""
    reference = f"freshflow-test/slow:{time.time_ns()}"
    build_test_image(docker_client, reference, reference, payload_bytes=3_000_000)
    yield reference
    remove_images(docker_client, reference)


@pytest.fixture
def slow_registry(registry_factory) -> Iterator[tuple[Registry, ThrottlingProxy]]:
    registry = registry_factory("slow")
    # Fast enough that what sits in socket buffers when the body ends (a few
    # hundred KB over two uploads) drains well within the cut-off grace.
    with ThrottlingProxy("127.0.0.1", registry.port, bytes_per_second=150_000) as proxy:
        yield registry, proxy


def test_timeout_stops_the_push(
    freshflow, workspace, integrations, slow_image, slow_registry
) -> None:
    registry, proxy = slow_registry
    integrations("slow", registry, host=proxy.host)
    pipeline = (
        "version: '1.0'\nsteps:\n  push:\n    type: push\n"
        f"    candidate: {slow_image}\n    registry: slow\n    tag: v1\n    timeout: 2s\n"
    )
    began = time.monotonic()
    result = run(freshflow, workspace(pipeline))
    elapsed = time.monotonic() - began

    step = result.json()["steps"]["push"]  # type: ignore[index]
    assert result.exit_code == 1
    assert step["result"] == "failure"
    assert "timed out after 2s" in step["reason"]
    assert elapsed < 20  # the flow's own overhead included
    # The push stopped for real: no byte moves afterwards, no tag was written,
    # and the registry holds no upload session.
    # (The proxy may still deliver the slice it holds: wait for its
    # connections to close first.)
    settle = time.monotonic() + 5
    while proxy.open_connections and time.monotonic() < settle:
        time.sleep(0.1)
    assert proxy.open_connections == 0
    stopped_at = proxy.bytes_uploaded
    time.sleep(3)
    assert proxy.bytes_uploaded == stopped_at
    assert proxy.bytes_uploaded < 1_000_000
    assert registry.tags("freshflow-test/slow") == []
    assert registry.uploads_in_progress("freshflow-test/slow") == []


def test_parallel_parent_timeout_bounds_children(
    freshflow, workspace, integrations, slow_image, slow_registry
) -> None:
    registry, proxy = slow_registry
    integrations("slow", registry, host=proxy.host)
    pipeline = (
        "version: '1.0'\nsteps:\n  both:\n    type: parallel\n    timeout: 2s\n    steps:\n"
        f"      slow_push:\n        type: push\n        candidate: {slow_image}\n        registry: slow\n"
    )
    result = run(freshflow, workspace(pipeline))

    steps = result.json()["steps"]
    assert "timed out after 2s" in steps["slow_push"]["reason"]  # type: ignore[index]
    assert steps["both"]["result"] == "failure"  # type: ignore[index]
    assert result.exit_code == 1


PARALLEL = """\
version: '1.0'
{root}steps:
  build:
    type: build
    image_name: app
    disable_push: true
  pushes:
    type: parallel
{parent}    steps:
      good:
        type: push
        candidate: ${{{{build}}}}
        registry: good
      bad:
        type: push
        candidate: ${{{{build}}}}
        registry: bad
{child}  after:
    type: push
    candidate: ${{{{build}}}}
    registry: good
    tag: after
"""

COMBOS = [
    # root, parent, failing child, build status, did `after` run
    pytest.param("", "", "", "failure", False, id="defaults-stop-the-build"),
    pytest.param(
        "",
        "",
        "        fail_fast: false\n",
        "success",
        True,
        id="child-fail-fast-false",
    ),
    pytest.param(
        "",
        "",
        "        fail_fast: false\n        strict_fail_fast: true\n",
        "failure",
        True,
        id="child-strict",
    ),
    pytest.param(
        "strict_fail_fast: true\n",
        "",
        "        fail_fast: false\n",
        "failure",
        True,
        id="root-strict",
    ),
    pytest.param(
        "", "    fail_fast: false\n", "", "success", True, id="parent-fail-fast-false"
    ),
    pytest.param(
        "strict_fail_fast: true\n",
        "    fail_fast: false\n",
        "",
        "success",
        True,
        id="parent-fail-fast-false-root-strict",
    ),
    pytest.param(
        "fail_fast: false\n", "", "", "success", True, id="root-fail-fast-false"
    ),
]


@pytest.mark.parametrize(("root", "parent", "child", "status", "after_ran"), COMBOS)
def test_fail_fast_rules_with_parallel_pushes(
    freshflow,
    workspace,
    registry_factory,
    integrations,
    root,
    parent,
    child,
    status,
    after_ran,
) -> None:
    good, bad = registry_factory("good"), registry_factory("bad")
    integrations("good", good)
    integrations("bad", bad)
    bad.stop()
    result = run(
        freshflow, workspace(PARALLEL.format(root=root, parent=parent, child=child))
    )

    document = result.json()
    steps = document["steps"]
    assert document["status"] == status, document
    assert result.exit_code == (0 if status == "success" else 1)
    assert steps["good"]["result"] == "success"  # type: ignore[index]
    assert steps["bad"]["result"] == "failure"  # type: ignore[index]
    assert steps["after"]["result"] == ("success" if after_ran else "skipped")  # type: ignore[index]
    assert ("after" in good.tags("app")) is after_ran


DIAMOND = """\
version: '1.0'
mode: parallel
steps:
  d:
    type: push
    candidate: {image}
    registry: left
    tag: after-both
    when:
      steps:
        - name: b
        - name: c
  b:
    type: push
    candidate: {image}
    registry: left
    tag: left
    when:
      steps: [{{name: a}}]
  c:
    type: push
    candidate: {image}
    registry: right
    tag: right
    when:
      steps: [{{name: a, on: [success]}}]
  a:
    type: push
    candidate: {image}
    registry: fast
    tag: first
  e:
    type: push
    candidate: {image}
    registry: fast
    tag: never
    when:
      steps:
        - name: a
          on: [failure]
"""


def test_parallel_mode_diamond(
    freshflow, workspace, registry_factory, integrations, docker_client, base_image
) -> None:
    image = f"freshflow-test/diamond:{time.time_ns()}"
    build_test_image(docker_client, image, image, payload_bytes=150_000)
    left, right, fast = (
        registry_factory("left"),
        registry_factory("right"),
        registry_factory("fast"),
    )
    with (
        ThrottlingProxy("127.0.0.1", left.port, bytes_per_second=100_000) as lp,
        ThrottlingProxy("127.0.0.1", right.port, bytes_per_second=100_000) as rp,
    ):
        integrations("left", left, host=lp.host)
        integrations("right", right, host=rp.host)
        integrations("fast", fast)
        result = run(freshflow, workspace(DIAMOND.format(image=image)))
    remove_images(docker_client, image)

    steps = result.json()["steps"]
    assert result.exit_code == 0, steps
    a, b, c, d = (steps[n] for n in "abcd")  # type: ignore[index]
    assert b["started"] >= a["finished"]
    assert c["started"] >= a["finished"]
    assert b["started"] < c["finished"]
    assert c["started"] < b["finished"]
    assert d["started"] >= max(b["finished"], c["finished"])
    assert steps["e"]["result"] == "skipped"  # type: ignore[index]
    assert "a (success)" in steps["e"]["reason"]  # type: ignore[index]


def test_dask_task_runner(freshflow, workspace, registry_factory, integrations) -> None:
    registry = registry_factory()
    integrations("local", registry)
    pipeline = BUILD.format(root="") + (
        "  pushes:\n    type: parallel\n    steps:\n"
        "      one:\n        type: push\n        candidate: ${{build}}\n        tag: one\n"
        "      two:\n        type: push\n        candidate: ${{build}}\n        tag: two\n"
    )
    result = freshflow(
        "run",
        str(workspace(pipeline)),
        "--branch",
        "main",
        "--json",
        "--task-runner",
        "dask",
    )

    assert result.exit_code == 0, result.stdout + result.stderr
    assert sorted(registry.tags("app")) == ["one", "two"]
