"""`freshflow deploy` and `freshflow server`: the Prefect platform commands.

`register(app)` adds them to the main command; `push_progress_bars()` shows
the pushes of an in-process run as rich progress bars on stderr.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from flows.errors import FreshflowError, PipelineFileError, Problem

if TYPE_CHECKING:
    from flows.deploy import Deployed
    from tasks.progress import PushUpdate

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

server_app = typer.Typer(
    help="Keep one local Prefect server running so runs skip its start-up.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add `deploy` and `server` to the `freshflow` command."""
    app.command("deploy")(deploy_command)
    app.add_typer(server_app, name="server")


def _fail(error: FreshflowError) -> NoReturn:
    if isinstance(error, PipelineFileError):
        for problem in [*error.problems, *error.warnings]:
            err.print(str(problem), markup=False)
    else:
        err.print(f"error: {error}", markup=False)
    raise typer.Exit(error.exit_code)


def deploy_command(
    file: Annotated[Path, typer.Argument(help="The pipeline file (codefresh.yml).")],
    name: Annotated[
        str | None,
        typer.Option(help="Deployment name (default: the pipeline's folder)."),
    ] = None,
    cron: Annotated[
        list[str] | None,
        typer.Option(help="Cron schedule, e.g. '0 3 * * *'; repeatable."),
    ] = None,
    interval: Annotated[
        list[str] | None,
        typer.Option(help="Interval schedule: 90 (seconds), 15m, 2h, 1d; repeatable."),
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="IANA time zone of the schedules (UTC).")
    ] = None,
    paused: Annotated[
        bool, typer.Option("--paused", help="Create the schedules inactive.")
    ] = False,
    pool: Annotated[
        str, typer.Option(help="Process work pool; created when missing.")
    ] = "freshflow",
    var: Annotated[
        list[str] | None,
        typer.Option("--var", help="Pipeline variable NAME=value; never a secret."),
    ] = None,
    branch: Annotated[
        str | None, typer.Option(help="Branch runs report as CF_BRANCH.")
    ] = None,
    checkout: Annotated[
        Path | None,
        typer.Option(help="freshflow checkout on the workers (default: this one)."),
    ] = None,
) -> None:
    """Deploy a pipeline to a process work pool, with optional schedules.

    Runs start on a worker of the pool, in the checkout, with the pipeline
    file, variables and branch as parameters.  Secrets stay in registry
    integrations or the worker's environment, never in parameters.
    """
    from flows.deploy import deploy, request_for
    from flows.variables import parse_assignments

    try:
        variables = parse_assignments(var or [])
    except ValueError as exc:
        _fail(PipelineFileError([Problem(str(exc))]))
    try:
        request = request_for(
            file,
            name=name,
            checkout=checkout,
            pool=pool,
            variables=variables,
            branch=branch,
            crons=cron or [],
            intervals=interval or [],
            timezone=timezone,
            paused=paused,
        )
        _check_pipeline(file)
        deployed = deploy(request)
    except FreshflowError as exc:
        _fail(exc)
    _print_deployed(deployed)


def _check_pipeline(file: Path) -> None:
    """Refuse a pipeline that `freshflow validate` refuses."""
    from blocks.store import catalog
    from flows.errors import PlatformError
    from flows.loader import load_pipeline
    from flows.validation import check

    pipeline, source = load_pipeline(file)
    try:
        integrations = catalog()
    except FreshflowError:
        raise
    except Exception as exc:
        msg = f"cannot reach the Prefect server: {exc}; set PREFECT_API_URL or run scripts/server"
        raise PlatformError(msg) from None
    problems = check(pipeline, source, integrations)
    if any(p.severity == "error" for p in problems):
        raise PipelineFileError(problems)
    for warning in problems:
        err.print(str(warning), markup=False)


def _print_deployed(deployed: Deployed) -> None:
    request = deployed.request
    if deployed.pool_created:
        out.print(f"created process work pool {request.pool!r}", markup=False)
    out.print(
        f"deployment {request.full_name!r} saved on pool {request.pool!r} "
        f"({deployed.id})",
        markup=False,
    )
    out.print(f"  pipeline {request.pipeline_file} in {request.checkout}", markup=False)
    state = "paused" if request.paused else "active"
    for expression in request.crons:
        zone = request.timezone or "UTC"
        out.print(f"  schedule: cron {expression!r} {zone} ({state})", markup=False)
    for every in request.intervals:
        out.print(f"  schedule: every {_duration(every)} ({state})", markup=False)
    out.print(f"run it now: prefect deployment run {request.full_name!r}", markup=False)
    if deployed.api_url is None:
        err.print(
            "warning: PREFECT_API_URL is not set, so the deployment went to the "
            "database in PREFECT_HOME; only a server on that database (freshflow "
            "server start) schedules it and hands it to workers",
            markup=False,
        )
    elif not deployed.workers_online:
        err.print(
            f"warning: no worker polls pool {request.pool!r}; start one with "
            f"scripts/server or `prefect worker start --pool {request.pool}`",
            markup=False,
        )


def _duration(every: timedelta) -> str:
    seconds = every.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@server_app.command("start")
def server_start(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 4201,
) -> None:
    """Start the local server in the background (once), on PREFECT_HOME's DB."""
    from flows.localserver import start

    try:
        server = start(port)
    except FreshflowError as exc:
        _fail(exc)
    out.print(
        f"local Prefect server running (pid {server.pid}); UI "
        f"{server.url.removesuffix('/api')}",
        markup=False,
    )
    out.print(
        "freshflow commands use it while it runs; for prefect commands:",
        markup=False,
    )
    out.print(f"export PREFECT_API_URL={server.url}", markup=False)


@server_app.command("stop")
def server_stop() -> None:
    """Stop the local background server."""
    from flows.localserver import stop

    server = stop()
    message = "no local server was running" if server is None else "stopped"
    out.print(f"local Prefect server: {message}", markup=False)


@server_app.command("status")
def server_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Say whether the local server runs and answers; exit 1 when it does not."""
    from flows.localserver import running

    server = running()
    healthy = server is not None and server.answers()
    if as_json:
        document = {"running": healthy, "url": server.url if server else None}
        print(json.dumps(document))
    elif server is None:
        out.print("local Prefect server: not running", markup=False)
    else:
        state = "answers" if healthy else "does not answer"
        out.print(
            f"local Prefect server (pid {server.pid}) at {server.url}: {state}",
            markup=False,
        )
    raise typer.Exit(0 if healthy else 1)


@contextlib.contextmanager
def push_progress_bars(console: Console | None = None) -> Iterator[None]:
    """Show one progress bar per push step while the block runs.

    Drawn on stderr and removed at the end; nothing is drawn when stderr is
    not a terminal (CI logs keep the one INFO line per pushed tag).
    """
    from rich.progress import BarColumn, Progress, TaskID, TextColumn

    from tasks.progress import watching

    console = console or err
    if not console.is_terminal:
        yield
        return
    bars: dict[str, TaskID] = {}
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        console=console,
        transient=True,
    )

    def show(update: PushUpdate) -> None:
        if update.key not in bars:
            bars[update.key] = progress.add_task(
                f"push {update.step} -> {update.repository}", total=100
            )
        progress.update(bars[update.key], completed=update.percent)

    with progress, watching(show):
        yield
