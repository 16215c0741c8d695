"""`freshflow plan`: what a run would do, computed without engine or registry.

Earlier steps are assumed to succeed; branch filters and conditions are
evaluated with the variables known before the run.  Anything that depends
on a real run (image IDs, digests) is shown as a placeholder.
"""

from __future__ import annotations

from pathlib import Path

from flows.errors import StepError
from flows.gitinfo import run_variables
from flows.integrations import Catalog
from flows.model import BuildStep, Pipeline, PushStep
from flows.plan import PlannedStep, translate
from flows.resolve import resolve_build, resolve_push
from flows.variables import Scope
from flows.when import skip_reason


def preview(
    pipeline: Pipeline,
    file: Path,
    catalog: Catalog,
    variables: dict[str, str],
    branch: str | None,
    revision: str | None,
) -> dict[str, object]:
    """The plan as the `plan --json` document (run's shape, without results)."""
    path = file.resolve()
    system = run_variables(path, branch, revision, build_id="<build id>")
    scope = Scope({**system, **variables})
    plan = translate(pipeline, str(path))
    builds: dict[str, str] = {}
    steps: dict[str, object] = {}
    results: dict[str, str] = {}
    for step in plan.all_steps():
        entry = _entry(step, scope, catalog, builds, path.parent, results)
        results[step.name] = "skipped" if "reason" in entry else "success"
        scope.steps[step.name] = {
            "name": step.name,
            "type": step.kind,
            "result": results[step.name],
        }
        steps[step.name] = entry
    return {
        "status": "planned",
        "file": str(file),
        "mode": plan.mode,
        "stages": [*plan.stages, *plan.extra_stages],
        "steps": steps,
    }


def _entry(
    step: PlannedStep,
    scope: Scope,
    catalog: Catalog,
    builds: dict[str, str],
    base_dir: Path,
    results: dict[str, str],
) -> dict[str, object]:
    entry: dict[str, object] = {
        "type": step.kind,
        "stage": step.stage,
        "title": step.title,
        "options": _options(step),
    }
    if step.parent:
        entry["parent"] = step.parent
    if step.unsupported:
        entry["reason"] = f"step type {step.kind!r} is not supported"
        return entry
    if step.parent and results.get(step.parent) == "skipped":
        entry["reason"] = f"parent step {step.parent!r} is skipped"
        return entry
    variables = scope.expression_variables()
    branch = scope.variables.get("CF_BRANCH", "")
    substitute = scope.with_step(step.name).substitute
    reason = skip_reason(step.when, branch, variables, results, substitute)
    if reason is not None:
        entry["reason"] = reason
        return entry
    try:
        if isinstance(step.spec, BuildStep):
            build = resolve_build(step.name, step.spec, scope, catalog, base_dir)
            builds[step.name] = build.image_name
            entry["builds"] = [f"{build.image_name}:{t}" for t in build.tags]
            entry["pushes"] = build.push.references() if build.push else []
            scope.images[step.name] = f"{build.image_name}:{build.tags[0]}"
        elif isinstance(step.spec, PushStep):
            push = resolve_push(step.name, step.spec, scope, catalog, builds)
            entry["candidate"] = push.candidate
            entry["pushes"] = push.references()
    except StepError as exc:
        entry["error"] = str(exc)
    return entry


def _options(step: PlannedStep) -> str:
    parts = []
    if step.retry.max_attempts > 1:
        delays = ", ".join(f"{d:g}s" for d in step.retry.delays)
        parts.append(f"{step.retry.max_attempts} attempts (waits {delays})")
    if step.timeout:
        parts.append(f"timeout {step.timeout:g}s")
    if not step.fail_fast:
        parts.append("fail_fast false")
    return "; ".join(parts)
