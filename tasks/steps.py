"""The Prefect tasks that carry out build and push steps.

Each task takes resolved, secret-free inputs (`flows.resolve`), runs against
the Docker Engine with a deadline, and returns a `StepOutcome`.  Failures are
raised as `StepError` subclasses whose message is the step's reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import docker
from prefect import get_run_logger, task
from prefect.runtime import flow_run, task_run

from flows import redaction, runlogs
from flows.errors import ImageNotFoundError, RegistryAuthError, StepError
from flows.report import PushedImage, StepOutcome
from flows.resolve import BuildSpecInput, PushSpec
from tasks import engine, progress
from tasks.credentials import (
    Target,
    docker_auth,
    ensure_ecr_repository,
    refresh_ecr_target,
    resolve_target,
)
from tasks.engine import RegistryAuth
from tasks.pushing import Pusher, make_pusher
from tasks.registry_push import Source
from tasks.settings import push_settings


def _prepare_logging() -> None:
    """Module warnings to this run, secrets masked: in any process a step runs in.

    The flow does the same, but with a Dask task runner a step runs in a
    worker process the flow never set up.
    """
    runlogs.install()
    redaction.install()


def _run_id() -> str:
    return str(flow_run.get_id() or "local")


def _attempt() -> int:
    return task_run.get_run_count() if task_run.get_id() else 1


def _attempt_note() -> str:
    count = _attempt()
    return f" (attempt {count})" if count > 1 else ""


def _with_attempt(text: str, max_attempts: int) -> str:
    """Fill CF_CURRENT_ATTEMPT / CF_MAX_ATTEMPTS, which only the task knows."""
    return text.replace("${{CF_CURRENT_ATTEMPT}}", str(_attempt())).replace(
        "${{CF_MAX_ATTEMPTS}}", str(max_attempts)
    )


def _push_for_attempt(spec: PushSpec, max_attempts: int) -> PushSpec:
    return replace(
        spec,
        tags=tuple(_with_attempt(t, max_attempts) for t in spec.tags),
        image_path=_with_attempt(spec.image_path, max_attempts),
    )


@task(name="push", persist_result=False)
def push_step(
    spec: PushSpec, image_id: str | None, timeout: float | None, max_attempts: int = 1
) -> StepOutcome:
    """Push the candidate under every tag of the step; fail on the first error."""
    _prepare_logging()
    logger = get_run_logger()
    started = time.time()
    spec = _push_for_attempt(spec, max_attempts)
    deadline = engine.Deadline(timeout, f"push step {spec.step!r}")
    api = engine.connect()
    source = image_id or _local_candidate(api, spec, deadline)
    logger.info(
        "pushing %s to %s as %s%s",
        spec.candidate,
        spec.destination.describe(),
        ", ".join(spec.tags),
        _attempt_note(),
    )
    pushed = push_to(api, spec, source, deadline)
    return StepOutcome(
        name=spec.step,
        type="push",
        result="success",
        image_id=source,
        pushed=pushed,
        started=started,
        finished=time.time(),
        attempts=_attempt(),
        exports={
            "imageId": source,
            "imageRepoDigest": f"{pushed[0].reference.rsplit(':', 1)[0]}@{pushed[0].digest}",
            "registry": pushed[0].reference.split("/", 1)[0],
        },
    )


def push_to(
    api: object, spec: PushSpec, image_id: str, deadline: engine.Deadline
) -> list[PushedImage]:
    """Push `image_id` as the spec says, refreshing an ECR login once on 401."""
    logger = get_run_logger()
    run_id = _run_id()
    target = resolve_target(spec.destination, run_id, spec.step)
    if spec.destination.kind == "ecr":
        ensure_ecr_repository(spec.destination, run_id, spec.step, spec.image_path)
    repository = f"{target.host}/{spec.image_path}"
    pusher: Pusher = make_pusher(
        api,
        push_settings(),
        progress.track_push(spec.step, repository, spec.tags),
        Source(spec.candidate, _source_auth(spec)),
    )

    def report(image: PushedImage) -> None:
        logger.info("pushed %s@%s", image.reference, image.digest)

    try:
        return pusher.push(
            image_id, repository, spec.tags, target.auth, deadline, report
        )
    except RegistryAuthError as exc:
        if spec.destination.kind != "ecr":
            raise
        earlier = [p for p in exc.pushed if isinstance(p, PushedImage)]
        done = {p.reference.rsplit(":", 1)[1] for p in earlier}
        logger.info("the registry refused the ECR login; fetching a new token")
        fresh: Target = refresh_ecr_target(spec.destination, run_id, spec.step)
        rest = tuple(t for t in spec.tags if t not in done)
        return earlier + pusher.push(
            image_id, repository, rest, fresh.auth, deadline, report
        )


def _source_auth(spec: PushSpec) -> Callable[[str], RegistryAuth | None]:
    """Credentials for reading the candidate from `host`, when an integration has them."""

    def lookup(host: str) -> RegistryAuth | None:
        if spec.pull_integration is None:
            return None
        domain, auth = docker_auth(spec.pull_integration)
        return auth if domain == host else None

    return lookup


def _local_candidate(
    api: docker.APIClient, spec: PushSpec, deadline: engine.Deadline
) -> str:
    found = engine.image_id(api, spec.candidate)
    if found is not None:
        return found
    auth = None
    if spec.pull_integration is not None:
        _, auth = docker_auth(spec.pull_integration)
    get_run_logger().info(
        "candidate %s is not in the engine; pulling it", spec.candidate
    )
    try:
        return engine.pull_image(api, spec.candidate, auth, deadline)
    except ImageNotFoundError as exc:
        msg = f"step {spec.step!r}: candidate {spec.candidate!r} does not exist locally and cannot be pulled: {exc}"
        raise ImageNotFoundError(msg) from None


@task(name="build", persist_result=False)
def build_step(
    spec: BuildSpecInput, timeout: float | None, max_attempts: int = 1
) -> StepOutcome:
    """Build the image, tag it, and push it to the integration when asked."""
    _prepare_logging()
    logger = get_run_logger()
    began = time.time()
    deadline = engine.Deadline(timeout, f"build step {spec.step!r}")
    api = engine.connect()
    local = tuple(f"{spec.image_name}:{t}" for t in spec.tags)
    logger.info(
        "building %s from %s%s", ", ".join(local), spec.context, _attempt_note()
    )
    started = time.monotonic()
    image = engine.build_image(
        api,
        engine.BuildSpec(
            context=Path(spec.context),
            dockerfile=spec.dockerfile,
            dockerfile_content=spec.dockerfile_content,
            tags=local,
            build_args=dict(spec.build_args),
            target=spec.target,
            no_cache=spec.no_cache,
        ),
        deadline,
        lambda line: logger.debug("%s", line),
    )
    logger.info(
        "built %s (%s) in %.1fs", local[0], image[:19], time.monotonic() - started
    )
    pushed: list[PushedImage] = []
    if spec.push is not None:
        try:
            pushed = push_to(api, spec.push, image, deadline)
        except StepError as exc:
            msg = f"the image was built ({image[:19]}) but pushing it failed: {exc}"
            error = type(exc)(msg)
            error.pushed = exc.pushed
            raise error from None
    return StepOutcome(
        started=began,
        finished=time.time(),
        attempts=_attempt(),
        name=spec.step,
        type="build",
        result="success",
        image_id=image,
        pushed=pushed,
        exports={
            "imageId": image,
            "imageName": spec.image_name,
            "imageTagName": spec.tags[0],
        },
    )
