"""`freshflow`: validate, plan and run codefresh.yml pipelines on Prefect.

Every error a user can cause ends as one clear message and an exit code per
failure domain (see `flows.errors`); a traceback is a bug.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from flows import cli_platform
from flows.cli_annotations import annotations_app
from flows.errors import FreshflowError, IntegrationError, PipelineFileError, Problem
from flows.integrations import Catalog
from flows.model import Pipeline
from flows.yamlsource import Source

app = typer.Typer(
    name="freshflow",
    help="Run Codefresh pipelines (codefresh.yml) as Prefect flows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
registry_app = typer.Typer(
    help="Manage registry integrations (Prefect blocks).", no_args_is_help=True
)
app.add_typer(registry_app, name="registry")
app.add_typer(annotations_app, name="annotations")
cli_platform.register(app)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

FileArg = Annotated[Path, typer.Argument(help="The pipeline file (codefresh.yml).")]
VarOpt = Annotated[
    list[str] | None,
    typer.Option("--var", help="Pipeline variable NAME=value; repeatable."),
]
BranchOpt = Annotated[
    str | None,
    typer.Option(help="Branch to report as CF_BRANCH (default: the checkout's)."),
]
RevisionOpt = Annotated[
    str | None,
    typer.Option(help="Commit to report as CF_REVISION (default: the checkout's)."),
]
SkipOpt = Annotated[
    bool,
    typer.Option(
        "--skip-unsupported",
        help="Skip unsupported steps and keys instead of refusing the pipeline.",
    ),
]


def _fail(error: FreshflowError) -> NoReturn:
    if isinstance(error, PipelineFileError):
        for problem in [*error.problems, *error.warnings]:
            err.print(str(problem), markup=False)
    else:
        err.print(f"error: {error}", markup=False)
    raise typer.Exit(error.exit_code)


def _catalog(required: bool) -> Catalog | None:
    """The registry integrations, or None (with a warning) when unreachable."""
    try:
        from blocks.store import catalog

        return catalog()
    except FreshflowError:
        raise
    except Exception as exc:
        if required:
            where = os.environ.get("PREFECT_API_URL") or "the embedded server"
            msg = (
                f"cannot read registry integrations from Prefect ({where}): {exc}; "
                "check PREFECT_API_URL, or unset it to use the embedded server"
            )
            raise IntegrationError(msg) from None
        err.print(
            f"warning: registry integrations not checked (Prefect unreachable: {exc})",
            markup=False,
        )
        return None


def _load_checked(
    file: Path, skip_unsupported: bool, catalog: Catalog | None
) -> tuple[Pipeline, Source]:
    from flows.loader import load_pipeline
    from flows.validation import check

    pipeline, source = load_pipeline(file)
    problems = check(pipeline, source, catalog, skip_unsupported=skip_unsupported)
    if any(p.severity == "error" for p in problems):
        raise PipelineFileError(problems)
    for warning in problems:
        err.print(str(warning), markup=False)
    return pipeline, source


@app.command()
def validate(file: FileArg, skip_unsupported: SkipOpt = False) -> None:
    """Check a pipeline file; print FILE:LINE:COL: message for every problem."""
    try:
        _load_checked(file, skip_unsupported, _catalog(required=False))
    except FreshflowError as exc:
        _fail(exc)
    out.print(f"{file}: valid", markup=False)


@app.command()
def plan(
    file: FileArg,
    var: VarOpt = None,
    branch: BranchOpt = None,
    revision: RevisionOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the plan as JSON.")
    ] = False,
    skip_unsupported: SkipOpt = False,
) -> None:
    """Show what would run, without touching the engine or a registry."""
    from flows.preview import preview

    try:
        catalog = _catalog(required=False)
        pipeline, _ = _load_checked(file, skip_unsupported, catalog)
        known = catalog or Catalog()
        document = preview(pipeline, file, known, _variables(var), branch, revision)
    except FreshflowError as exc:
        _fail(exc)
    if as_json:
        out.print(json.dumps(document, indent=2), markup=False)
        return
    _print_plan(document)


def _print_plan(document: dict[str, object]) -> None:
    table = Table(title=f"plan of {document['file']}")
    for column in ("step", "stage", "type"):
        table.add_column(column, no_wrap=True)
    table.add_column("what", overflow="fold")
    table.add_column("options", overflow="fold")
    steps = document["steps"]
    assert isinstance(steps, dict)
    for name, step in steps.items():
        if step.get("reason"):
            what = [f"skipped: {step['reason']}"]
        elif step.get("error"):
            what = [f"cannot resolve yet: {step['error']}"]
        else:
            what = [f"build {b}" for b in step.get("builds", [])]
            what += [f"push {p}" for p in step.get("pushes", [])]
        indent = "  " if step.get("parent") else ""
        row = (indent + name, step["stage"], step["type"], "\n".join(what))
        table.add_row(*row, step.get("options", ""))
    out.print(table)


def _variables(var: list[str] | None) -> dict[str, str]:
    from flows.variables import parse_assignments

    try:
        return parse_assignments(var or [])
    except ValueError as exc:
        raise PipelineFileError([Problem(str(exc))]) from None


@app.command()
def run(
    file: FileArg,
    var: VarOpt = None,
    branch: BranchOpt = None,
    revision: RevisionOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the build report as JSON on stdout.")
    ] = False,
    skip_unsupported: SkipOpt = False,
    task_runner: Annotated[
        str,
        typer.Option(
            help="threads (default), or dask to spread steps over a Dask cluster "
            "(FRESHFLOW_DASK_ADDRESS names one; else a local cluster starts)."
        ),
    ] = "threads",
) -> None:
    """Run the pipeline as a Prefect flow run; exit 0 on success, 1 on failure."""
    from flows.pipeline import make_task_runner, run_pipeline

    try:
        variables = _variables(var)
        _load_checked(file, skip_unsupported, _catalog(required=True))
        runner = make_task_runner(task_runner)
    except FreshflowError as exc:
        _fail(exc)
    with cli_platform.push_progress_bars(err):
        state = run_pipeline.with_options(task_runner=runner)(
            str(file.resolve()),
            variables,
            branch,
            revision,
            None,
            skip_unsupported,
            return_state=True,
        )
    report = state.result(raise_on_failure=False)
    if not isinstance(report, dict):
        err.print(f"error: the pipeline did not run: {state.message}", markup=False)
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    raise typer.Exit(0 if report["status"] == "success" else 1)


def _print_report(report: dict[str, object]) -> None:
    table = Table(title=str(report["message"]))
    table.add_column("step", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("pushed / reason", overflow="fold")
    steps = report["steps"]
    assert isinstance(steps, dict)
    for name, step in steps.items():
        detail = "\n".join(step.get("pushed", [])) or step.get("reason", "") or ""
        table.add_row(name, step["result"], detail)
    out.print(table)


@registry_app.command("add")
def registry_add(
    name: Annotated[
        str,
        typer.Argument(help="Integration name, used as `registry:` in codefresh.yml."),
    ],
    domain: Annotated[
        str,
        typer.Option(
            help="Registry host, e.g. registry.example.com or 127.0.0.1:5000."
        ),
    ],
    username: Annotated[
        str | None, typer.Option(help="User name for the registry.")
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from standard input."),
    ] = False,
    prefix: Annotated[
        str, typer.Option(help="Repository prefix put before image names.")
    ] = "",
    default: Annotated[
        bool, typer.Option("--default", help="Use when a step names no registry.")
    ] = False,
    primary: Annotated[
        bool,
        typer.Option("--primary", help="Pull with this one when domains are shared."),
    ] = False,
) -> None:
    """Add (or replace) a Docker registry integration.

    The password comes from stdin (--password-stdin) or the environment
    variable FRESHFLOW_REGISTRY_PASSWORD, never from the command line.
    """
    from pydantic import SecretStr

    from blocks.registry import DockerRegistry
    from blocks.store import save

    password = _secret(password_stdin, "FRESHFLOW_REGISTRY_PASSWORD")
    if username and password is None:
        err.print(
            "error: --username needs a password: pipe it to --password-stdin or set FRESHFLOW_REGISTRY_PASSWORD",
            markup=False,
        )
        raise typer.Exit(2)
    block = DockerRegistry(
        domain=domain,
        username=username,
        password=SecretStr(password) if password else None,
        prefix=prefix,
        default=default,
        primary=primary,
    )
    try:
        save(name, block)
    except FreshflowError as exc:
        _fail(exc)
    out.print(f"registry integration {name!r} saved ({domain})", markup=False)


@registry_app.command("add-ecr")
def registry_add_ecr(
    name: Annotated[
        str,
        typer.Argument(help="Integration name, used as `registry:` in codefresh.yml."),
    ],
    region: Annotated[str, typer.Option(help="AWS region, e.g. us-east-1.")],
    account: Annotated[
        str | None,
        typer.Option(
            help="12-digit AWS account ID, or the registry host "
            "<account>.dkr.ecr.<region>.amazonaws.com; looked up with STS when "
            "omitted and keys are given, else taken from the login at push time."
        ),
    ] = None,
    access_key_id: Annotated[
        str | None,
        typer.Option(help="AWS access key ID (omit to use the worker's AWS chain)."),
    ] = None,
    secret_stdin: Annotated[
        bool,
        typer.Option(
            "--secret-stdin", help="Read the secret access key from standard input."
        ),
    ] = False,
    create_repositories: Annotated[
        bool,
        typer.Option(
            "--create-repositories", help="Create missing repositories on push."
        ),
    ] = False,
    prefix: Annotated[
        str, typer.Option(help="Repository prefix put before image names.")
    ] = "",
    default: Annotated[
        bool, typer.Option("--default", help="Use when a step names no registry.")
    ] = False,
    primary: Annotated[
        bool,
        typer.Option("--primary", help="Pull with this one when domains are shared."),
    ] = False,
) -> None:
    """Add (or replace) an Amazon ECR integration.

    The secret key comes from stdin (--secret-stdin) or the environment
    variable FRESHFLOW_AWS_SECRET_ACCESS_KEY, never from the command line;
    a session token for temporary keys from FRESHFLOW_AWS_SESSION_TOKEN.
    """
    from pydantic import SecretStr

    from blocks.registry import EcrRegistry
    from blocks.store import save

    secret = _secret(secret_stdin, "FRESHFLOW_AWS_SECRET_ACCESS_KEY")
    if access_key_id and secret is None:
        err.print(
            "error: --access-key-id needs the secret key: pipe it to --secret-stdin or set FRESHFLOW_AWS_SECRET_ACCESS_KEY",
            markup=False,
        )
        raise typer.Exit(2)
    token = os.environ.get("FRESHFLOW_AWS_SESSION_TOKEN") or None
    try:
        account = _ecr_account(account, region, access_key_id, secret, token)
    except FreshflowError as exc:
        _fail(exc)
    block = EcrRegistry(
        region=region,
        account_id=account,
        access_key_id=access_key_id,
        secret_access_key=SecretStr(secret) if secret else None,
        session_token=SecretStr(token) if token and access_key_id else None,
        create_repositories=create_repositories,
        prefix=prefix,
        default=default,
        primary=primary,
    )
    try:
        save(name, block)
    except FreshflowError as exc:
        _fail(exc)
    out.print(f"ECR integration {name!r} saved ({block.domain})", markup=False)


def _ecr_account(
    account: str | None,
    region: str,
    key_id: str | None,
    secret: str | None,
    token: str | None,
) -> str | None:
    """The 12-digit account of an ECR integration, checked or looked up."""
    from flows.integrations import AWS_REGION, ECR_HOST

    if not AWS_REGION.match(region):
        msg = f"--region {region!r} is not an AWS region name like us-east-1"
        raise IntegrationError(msg)
    host = ECR_HOST.match(account or "")
    if host and host.group("region") != region:
        msg = f"--account {account!r} is a registry in {host.group('region')!r}, not in --region {region!r}; give the same region"
        raise IntegrationError(msg)
    if account and host is None and not (account.isdigit() and len(account) == 12):
        msg = f"--account {account!r} is neither a 12-digit AWS account ID nor a registry host <account>.dkr.ecr.<region>.amazonaws.com"
        raise IntegrationError(msg)
    if host is not None or account is not None or key_id is None:
        return host.group("account") if host else account

    from tasks.ecr import AwsKeys, caller_account

    try:
        return caller_account(AwsKeys(key_id, secret, token), region)
    except FreshflowError as exc:
        err.print(
            f"warning: AWS account not looked up ({exc}); it is taken from the ECR login at push time",
            markup=False,
        )
        return None


def _secret(from_stdin: bool, variable: str) -> str | None:
    if from_stdin:
        value = sys.stdin.read().rstrip("\r\n")
        return value or None
    return os.environ.get(variable) or None


@registry_app.command("list")
def registry_list() -> None:
    """List the registry integrations (never their secrets)."""
    from blocks.store import catalog

    table = Table("name", "kind", "domain", "prefix", "default")
    for info in catalog().integrations:
        table.add_row(
            info.name,
            info.kind,
            info.domain,
            info.prefix,
            "yes" if info.default else "",
        )
    out.print(table)


@registry_app.command("remove")
def registry_remove(
    name: Annotated[str, typer.Argument(help="Integration to delete.")],
) -> None:
    """Delete a registry integration."""
    from blocks.store import remove

    try:
        remove(name)
    except FreshflowError as exc:
        _fail(exc)
    out.print(f"registry integration {name!r} removed", markup=False)


@app.command()
def schema() -> None:
    """Print the JSON Schema of codefresh.yml (for editors)."""
    from flows.model import Pipeline

    print(json.dumps(Pipeline.model_json_schema(by_alias=True), indent=2))


_PREFECT_DEFAULTS = {
    # The embedded server needs more than Prefect's 20 s on a cold 2-CPU
    # machine, and has no network to send telemetry to.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def main() -> None:
    """Entry point of the `freshflow` command."""
    for key, value in _PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    from prefect.context import refresh_global_settings_context

    from flows.localserver import use_running_server

    use_running_server()  # `freshflow server start` saves the start-up
    refresh_global_settings_context()  # Prefect read its settings on import
    try:
        app()
    except FreshflowError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        sys.exit(130)
