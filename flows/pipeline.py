"""The Prefect flow that runs a codefresh.yml pipeline.

One flow run per pipeline run; one task run per step, named after the step
(its title when set) and tagged with its stage.  Conditions are evaluated at
the step's turn; a failed fail-fast step stops the pipeline (steps not yet
started are skipped, running siblings finish).  The build status is computed
at the end of the flow and returned as its final state; a state hook
publishes it as an artifact.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import Flow, flow, get_run_logger, task
from prefect.client.schemas.objects import FlowRun, State
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run as runtime_flow_run
from prefect.states import Completed, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from flows import redaction, runlogs
from flows.errors import FreshflowError, PipelineFileError, StepError
from flows.gitinfo import run_variables
from flows.integrations import Catalog
from flows.loader import load_pipeline
from flows.model import BuildStep, ParallelStep, PushStep
from flows.plan import Plan, PlannedStep, translate
from flows.post_steps_runtime import run_post_step_operations
from flows.report import (
    FAILURE_MESSAGE,
    SUCCESS_MESSAGE,
    BuildReport,
    Result,
    StepOutcome,
    build_status,
)
from flows.resolve import resolve_build, resolve_push
from flows.validation import check
from flows.variables import Scope
from flows.when import skip_reason, success_by_criteria

log = logging.getLogger(__name__)

MAX_PARALLEL = int(os.environ.get("FRESHFLOW_MAX_PARALLEL", "8"))
TASK_RUNNER = os.environ.get("FRESHFLOW_TASK_RUNNER", "threads")
_TIMEOUT_GRACE = 15.0  # Prefect's own timeout is a backstop behind ours


@dataclass
class _Run:
    """The mutable state of one pipeline run inside the flow."""

    plan: Plan
    scope: Scope
    catalog: Catalog
    base_dir: Path
    run_id: str
    outcomes: dict[str, StepOutcome] = field(default_factory=dict)
    builds: dict[str, str] = field(default_factory=dict)
    stopped_by: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def workflow_result(self) -> str:
        failed = any(
            o.result in ("failure", "terminated") for o in self.outcomes.values()
        )
        return "failure" if failed else "running"

    def record(self, step: PlannedStep, outcome: StepOutcome) -> StepOutcome:
        outcome.stage, outcome.title = step.stage, step.title
        outcome.fail_fast, outcome.strict_fail_fast = (
            step.fail_fast,
            step.strict_fail_fast,
        )
        outcome.parent = step.parent
        with self.lock:
            self.outcomes[step.name] = outcome
            members = {"name": step.name, "type": step.kind, "result": outcome.result}
            self.scope.steps[step.name] = {**members, **outcome.exports}
            if outcome.type == "build" and outcome.result == "success":
                name, tag = (
                    outcome.exports["imageName"],
                    outcome.exports["imageTagName"],
                )
                self.scope.images[step.name] = f"{name}:{tag}"
            if outcome.result == "failure" and step.fail_fast and step.parent is None:
                self.stopped_by = self.stopped_by or step.name
        run_post_step_operations(
            step.spec,
            outcome,
            self.scope,
            self.run_id,
            self.scope.variables["CF_PIPELINE_NAME"],
            base_dir=self.base_dir,
            workflow_result=self.workflow_result(),
        )
        return outcome


@task(name="skipped", persist_result=False)
def skipped_step(reason: str) -> State:
    """Shows a skipped step in the Prefect UI, with the reason."""
    get_run_logger().info("skipped: %s", reason)
    return Completed(name="Skipped", message=reason)


def _publish_status(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
    from flows.artifacts import publish_status

    publish_status(state)


def make_task_runner(kind: str = TASK_RUNNER) -> Any:
    """Threads by default; `dask` spreads steps over a Dask cluster.

    FRESHFLOW_DASK_ADDRESS names a running scheduler (`tcp://host:8786`);
    without it a local cluster is started.  Every Dask worker must reach the
    same Docker Engine (DOCKER_HOST), the Prefect API and this package.
    """
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=MAX_PARALLEL)
    if kind != "dask":
        msg = f"FRESHFLOW_TASK_RUNNER={kind!r} is not known; use threads or dask"
        raise FreshflowError(msg)
    try:
        from prefect_dask.task_runners import DaskTaskRunner
    except ImportError:
        msg = "the Dask task runner needs prefect-dask: pip install 'freshflow[dask]'"
        raise FreshflowError(msg) from None
    address = os.environ.get("FRESHFLOW_DASK_ADDRESS")
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_kwargs={"n_workers": 1, "threads_per_worker": MAX_PARALLEL}
    )


@flow(
    name="codefresh-pipeline",
    task_runner=make_task_runner(),
    persist_result=False,
    on_completion=[_publish_status],
    on_failure=[_publish_status],
    validate_parameters=True,
)
def run_pipeline(
    pipeline_file: str,
    variables: dict[str, str] | None = None,
    branch: str | None = None,
    revision: str | None = None,
    pipeline_name: str | None = None,
    skip_unsupported: bool = False,
) -> State:
    """Run the steps of `pipeline_file` and return the build status as the state.

    `variables` are pipeline variables (`--var`); secrets never go here: put
    them in registry integrations or in the worker's environment.
    """
    runlogs.install()
    redaction.install()  # after runlogs: its handler gets the filter too
    logger = get_run_logger()
    path = Path(pipeline_file).resolve()
    run = _prepare(
        path, variables or {}, branch, revision, pipeline_name, skip_unsupported
    )
    logger.info(
        "pipeline %s: %d steps, branch %r, revision %s",
        path.name,
        len(run.plan.all_steps()),
        run.scope.variables.get("CF_BRANCH"),
        run.scope.variables.get("CF_SHORT_REVISION") or "-",
    )
    try:
        if run.plan.mode == "parallel":
            from flows.graph import run_graph

            run_graph(run, _start_step, _finish_step, _skip)
        else:
            for step in run.plan.steps:
                _run_sequential(run, step)
    finally:
        from tasks import vault

        vault.forget(run.run_id)
    return _final_state(run)


def _prepare(
    path: Path,
    variables: dict[str, str],
    branch: str | None,
    revision: str | None,
    name: str | None,
    skip_unsupported: bool,
) -> _Run:
    from blocks.store import catalog as load_catalog

    pipeline, source = load_pipeline(path)
    catalog = load_catalog()
    problems = check(pipeline, source, catalog, skip_unsupported=skip_unsupported)
    if any(p.severity == "error" for p in problems):
        raise PipelineFileError(problems)
    for warning in problems:
        get_run_logger().warning("%s", warning)
    run_id = str(runtime_flow_run.get_id() or "local")
    system = run_variables(path, branch, revision, build_id=run_id, pipeline_name=name)
    scope = Scope({**os.environ, **system, **variables})
    run = _Run(translate(pipeline, str(path)), scope, catalog, path.parent, run_id)
    _stash_inline_secrets(run)
    return run


def _stash_inline_secrets(run: _Run) -> None:
    """Put inline credentials in the vault so no task parameter carries them."""
    from tasks import vault

    for step in run.plan.all_steps():
        spec = step.spec
        if not isinstance(spec, PushStep):
            continue
        sub = run.scope.with_step(step.name).substitute
        if spec.credentials is not None:
            vault.put(run.run_id, step.name, "username", sub(spec.credentials.username))
            vault.put(run.run_id, step.name, "password", sub(spec.credentials.password))
        if spec.access_key_id:
            vault.put(run.run_id, step.name, "access_key_id", sub(spec.access_key_id))
        if spec.secret_access_key:
            vault.put(
                run.run_id, step.name, "secret_access_key", sub(spec.secret_access_key)
            )


def _run_sequential(run: _Run, step: PlannedStep) -> None:
    started = _start_step(run, step)
    if started is not None:
        _finish_step(run, step, started)


@dataclass
class _Started:
    """A step whose task runs were submitted."""

    futures: dict[str, PrefectFuture[Any]]
    began: float
    done: dict[str, StepOutcome] = field(default_factory=dict)

    def finished(self) -> bool:
        return all(f.state.is_final() for f in self.futures.values())


def _start_step(run: _Run, step: PlannedStep) -> _Started | None:
    """Decide whether `step` runs; submit its task runs, or record why not."""
    reason = _why_not(run, step)
    if reason is not None:
        _skip(run, step, reason)
        return None
    began = time.monotonic()
    if isinstance(step.spec, ParallelStep):
        started = _Started({}, began)
        for child in step.children:
            child_reason = _why_not(run, child)
            if child_reason is not None:
                _skip(run, child, child_reason)
                continue
            future = _submit(run, child, started)
            if future is not None:
                started.futures[child.name] = future
        return started
    started = _Started({}, began)
    future = _submit(run, step, started)
    if future is not None:
        started.futures[step.name] = future
    return started


def _why_not(run: _Run, step: PlannedStep) -> str | None:
    if run.stopped_by is not None:
        return f"step {run.stopped_by!r} failed and fail_fast stopped the pipeline"
    if step.unsupported:
        return f"step type {step.kind!r} is not supported (--skip-unsupported)"
    results = {n: o.result for n, o in run.outcomes.items()}
    variables = run.scope.expression_variables(run.workflow_result())
    branch = run.scope.variables.get("CF_BRANCH", "")
    substitute = run.scope.with_step(step.name).substitute
    return skip_reason(step.when, branch, variables, results, substitute)


def _skip(run: _Run, step: PlannedStep, reason: str) -> None:
    skipped_step.with_options(task_run_name=step.label, tags=[step.stage])(reason)
    run.record(step, StepOutcome(step.name, step.kind, "skipped", reason=reason))
    for child in step.children:
        _skip(run, child, f"parent step {step.name!r} was skipped")


def _submit(
    run: _Run, step: PlannedStep, started: _Started
) -> PrefectFuture[Any] | None:
    """Resolve the step's inputs and submit its task; a resolve error fails it."""
    from tasks.steps import build_step, push_step

    options: dict[str, Any] = {
        "task_run_name": step.label,
        "tags": [step.stage, step.kind],
        "retries": step.retry.retries,
        "retry_delay_seconds": list(step.retry.delays) or 0,
        "timeout_seconds": step.timeout + _TIMEOUT_GRACE if step.timeout else None,
    }
    try:
        if isinstance(step.spec, PushStep):
            _check_runner_can_see_vault(step)
            spec = resolve_push(
                step.name, step.spec, run.scope, run.catalog, run.builds
            )
            image = (
                run.outcomes[spec.candidate_step].image_id
                if spec.candidate_step
                else None
            )
            if spec.candidate_step and image is None:
                msg = f"candidate step {spec.candidate_step!r} did not build an image (it was {run.outcomes[spec.candidate_step].result})"
                raise StepError(msg)
            return push_step.with_options(**options).submit(
                spec, image, step.timeout, step.retry.max_attempts
            )
        assert isinstance(step.spec, BuildStep)
        build = resolve_build(
            step.name, step.spec, run.scope, run.catalog, run.base_dir
        )
        run.builds[step.name] = build.image_name
        return build_step.with_options(**options).submit(
            build, step.timeout, step.retry.max_attempts
        )
    except (StepError, KeyError) as exc:
        get_run_logger().error("step %s failed: %s", step.name, exc)
        outcome = StepOutcome(step.name, step.kind, "failure", reason=str(exc))
        started.done[step.name] = run.record(step, outcome)
        return None


def _current_task_runner() -> object:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return context.task_runner if context else None


def _check_runner_can_see_vault(step: PlannedStep) -> None:
    spec = step.spec
    inline = isinstance(spec, PushStep) and (
        spec.credentials is not None or spec.secret_access_key is not None
    )
    if inline and not isinstance(_current_task_runner(), ThreadPoolTaskRunner):
        msg = (
            f"step {step.name!r} has inline credentials, which stay in this process; "
            "with the Dask task runner use a registry integration instead"
        )
        raise StepError(msg)


def _finish_step(run: _Run, step: PlannedStep, started: _Started) -> None:
    """Wait for the step's task runs and record their outcomes."""
    by_name = {c.name: c for c in (step.children or (step,))}
    for name, future in started.futures.items():
        future.wait()
        started.done[name] = run.record(by_name[name], _outcome(by_name[name], future))
    if isinstance(step.spec, ParallelStep):
        _finish_parallel(run, step)


def _outcome(step: PlannedStep, future: PrefectFuture[Any]) -> StepOutcome:
    state = future.state
    if state.is_completed():
        outcome = future.result()
        assert isinstance(outcome, StepOutcome)
        return outcome
    error = future.result(raise_on_failure=False)
    reason = str(error) if isinstance(error, BaseException) else state.message
    if isinstance(error, TimeoutError) and not isinstance(error, FreshflowError):
        reason = f"step {step.name!r} timed out after {step.timeout:g}s"
    get_run_logger().error("step %s failed: %s", step.name, reason)
    pushed = list(getattr(error, "pushed", ()))
    return StepOutcome(step.name, step.kind, "failure", reason=reason, pushed=pushed)


def _finish_parallel(run: _Run, step: PlannedStep) -> None:
    spec = step.spec
    assert isinstance(spec, ParallelStep)
    children = {c.name: run.outcomes[c.name] for c in step.children}
    variables = run.scope.expression_variables(run.workflow_result())
    ok, reason = success_by_criteria(
        spec.success_criteria, children, variables, run.scope.substitute
    )
    result: Result = "success" if ok else "failure"
    run.record(step, StepOutcome(step.name, "parallel", result, reason=reason))


def _final_state(run: _Run) -> State:
    status, failing = build_status(run.outcomes, run.plan.strict_fail_fast)
    message = SUCCESS_MESSAGE if status == "success" else FAILURE_MESSAGE
    if failing:
        message = f"{message}: {', '.join(failing)} failed"
    report = BuildReport(status, message, run.run_id, run.outcomes, failing)
    data = report.as_json()
    if status == "success":
        return Completed(message=message, data=data)
    return Failed(message=message, data=data)
