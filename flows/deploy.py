"""Deployments of the pipeline flow to a process work pool, without YAML.

`freshflow deploy FILE` makes what a `prefect.yaml` entry makes: a deployment
of `flows/pipeline.py:run_pipeline` whose runs start in the freshflow checkout
on the worker's disk (a `set_working_directory` pull step), with the pipeline
file, variables and branch as parameters, and optional cron and interval
schedules.  Parameters are stored in plain text on the server, so variables
that look like secrets are refused: integrations are referenced by name in
the pipeline and loaded from blocks on the worker.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from flows.errors import PlatformError

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.schedules import Schedule

log = logging.getLogger(__name__)

ENTRYPOINT = "flows/pipeline.py:run_pipeline"
FLOW_NAME = "codefresh-pipeline"
DEFAULT_POOL = "freshflow"
CHECKOUT = Path(__file__).resolve().parents[1]

_SECRET_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "PRIVATE_KEY")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class DeploymentRequest:
    """Everything a pipeline deployment is made of, checked and secret-free."""

    name: str
    pipeline_file: str
    checkout: Path
    pool: str = DEFAULT_POOL
    variables: Mapping[str, str] = field(default_factory=dict)
    branch: str | None = None
    crons: tuple[str, ...] = ()
    intervals: tuple[timedelta, ...] = ()
    timezone: str | None = None
    paused: bool = False
    tags: tuple[str, ...] = ("freshflow",)

    @property
    def full_name(self) -> str:
        """`flow/deployment`, as `prefect deployment run` takes it."""
        return f"{FLOW_NAME}/{self.name}"

    def parameters(self) -> dict[str, Any]:
        """The flow-run parameters every run of the deployment starts with."""
        parameters: dict[str, Any] = {"pipeline_file": self.pipeline_file}
        if self.variables:
            parameters["variables"] = dict(self.variables)
        if self.branch:
            parameters["branch"] = self.branch
        return parameters


@dataclass(frozen=True)
class Deployed:
    """What `deploy` created or updated."""

    id: UUID
    request: DeploymentRequest
    pool_created: bool
    workers_online: int
    api_url: str | None


def default_name(pipeline_file: Path) -> str:
    """The deployment name of a pipeline: its folder, or the file's stem."""
    stem = pipeline_file.stem
    base = pipeline_file.resolve().parent.name if stem == "codefresh" else stem
    return re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-") or "pipeline"


def relative_to_checkout(pipeline_file: Path, checkout: Path) -> str:
    """The pipeline path as runs see it: relative to the checkout if inside."""
    resolved = pipeline_file.resolve()
    try:
        return str(resolved.relative_to(checkout.resolve()))
    except ValueError:
        return str(resolved)


def parse_interval(text: str) -> timedelta:
    """`90`, `90s`, `15m`, `2h` or `1d` as a positive duration."""
    match = _DURATION.match(text.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        msg = f"--interval {text!r} is not a positive duration like 90, 15m, 2h or 1d"
        raise PlatformError(msg)
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def refuse_secret_variables(variables: Mapping[str, str]) -> None:
    """Parameters are stored in plain text: no secret may travel as one."""
    for name in variables:
        if any(word in name.upper() for word in _SECRET_WORDS):
            msg = (
                f"variable {name!r} looks like a secret, and deployment parameters "
                "are stored in plain text on the Prefect server; keep it in a "
                "registry integration (`freshflow registry add`) or in the "
                f"worker's environment, where ${{{{{name}}}}} finds it"
            )
            raise PlatformError(msg)


def schedules(request: DeploymentRequest) -> list[Schedule]:
    """The request's cron and interval schedules, inactive when paused."""
    from prefect.schedules import Cron, Interval

    active = not request.paused
    made: list[Schedule] = []
    for expression in request.crons:
        try:
            made.append(Cron(expression, timezone=request.timezone, active=active))
        except ValueError as exc:
            msg = f"--cron {expression!r} is not a valid cron expression: {exc}"
            raise PlatformError(msg) from None
    made += [
        Interval(every, timezone=request.timezone, active=active)
        for every in request.intervals
    ]
    return made


def deploy(request: DeploymentRequest) -> Deployed:
    """Create or update the deployment on the Prefect server (no image built)."""
    from prefect.client.orchestration import get_client
    from prefect.deployments.runner import RunnerDeployment
    from prefect.runner.storage import LocalStorage
    from prefect.settings import PREFECT_API_URL

    refuse_secret_variables(request.variables)
    made = schedules(request)
    with get_client(sync_client=True) as client:
        pool_created = _ensure_process_pool(client, request.pool)
        deployment = RunnerDeployment.from_storage(
            storage=LocalStorage(str(request.checkout)),
            entrypoint=ENTRYPOINT,
            name=request.name,
            parameters=request.parameters(),
            schedules=made or None,
            tags=list(request.tags),
            description=f"Runs the Codefresh pipeline {request.pipeline_file}.",
            work_pool_name=request.pool,
        )
        assert isinstance(deployment, RunnerDeployment)  # sync call, sync result
        deployment_id = deployment.apply()
        assert isinstance(deployment_id, UUID)
        online = _workers_online(client, request.pool)
    log.info("deployment %s saved (%s)", request.full_name, deployment_id)
    api_url = PREFECT_API_URL.value()
    return Deployed(deployment_id, request, pool_created, online, api_url)


def _ensure_process_pool(client: SyncPrefectClient, pool: str) -> bool:
    """Create `pool` as a process pool when missing; refuse other pool types."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    try:
        existing = client.read_work_pool(pool)
    except ObjectNotFound:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        log.info("created process work pool %r", pool)
        return True
    if existing.type != "process":
        msg = (
            f"work pool {pool!r} is a {existing.type!r} pool; freshflow runs "
            "pipelines on `process` pools (it drives the worker machine's Docker "
            "Engine): pick another --pool"
        )
        raise PlatformError(msg)
    return False


def _workers_online(client: SyncPrefectClient, pool: str) -> int:
    workers = client.read_workers_for_work_pool(pool)
    return sum(1 for worker in workers if worker.status == "ONLINE")


def request_for(
    pipeline_file: Path,
    *,
    name: str | None = None,
    checkout: Path | None = None,
    pool: str = DEFAULT_POOL,
    variables: Mapping[str, str] | None = None,
    branch: str | None = None,
    crons: Sequence[str] = (),
    intervals: Sequence[str] = (),
    timezone: str | None = None,
    paused: bool = False,
) -> DeploymentRequest:
    """A checked request from command-line values."""
    root = (checkout or CHECKOUT).resolve()
    if not (root / ENTRYPOINT.partition(":")[0]).is_file():
        msg = f"checkout {str(root)!r} has no {ENTRYPOINT.partition(':')[0]}; point --checkout at a freshflow checkout"
        raise PlatformError(msg)
    refuse_secret_variables(variables or {})
    return DeploymentRequest(
        name=name or default_name(pipeline_file),
        pipeline_file=relative_to_checkout(pipeline_file, root),
        checkout=root,
        pool=pool,
        variables=dict(variables or {}),
        branch=branch,
        crons=tuple(crons),
        intervals=tuple(parse_interval(i) for i in intervals),
        timezone=timezone,
        paused=paused,
    )
