"""Resolve a build or push step against the run's variables and integrations.

The results are the exact inputs of the build and push tasks: image names,
tags and where to push, with every `${{...}}` substituted.  They never hold a
secret; credentials are named (an integration) or kept in the run's vault.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from flows.errors import StepError
from flows.integrations import Catalog, IntegrationInfo, ecr_host, looks_like_host
from flows.model import BuildStep, InlineDockerfile, PushStep
from flows.references import (
    ImageReferenceError,
    check_tag,
    repository_path,
    target_repository,
)
from flows.variables import VARIABLE, Scope

ATTEMPT_VARIABLES = ("CF_CURRENT_ATTEMPT", "CF_MAX_ATTEMPTS")


@dataclass(frozen=True)
class Destination:
    """Where a push goes and how it authenticates (no secret values)."""

    kind: Literal["docker", "ecr"]
    integration: str | None = None
    host: str | None = None
    prefix: str = ""
    region: str | None = None
    role_arn: str | None = None
    session_name: str = "default-session-name"
    duration_seconds: int = 3600
    inline_credentials: bool = False

    def describe(self) -> str:
        where = self.host or f"<ECR {self.region or 'default region'}>"
        return (
            f"{where} (integration {self.integration!r})" if self.integration else where
        )


@dataclass(frozen=True)
class PushSpec:
    """Inputs of one push: the source image, repository path, tags, target."""

    step: str
    candidate: str
    candidate_step: str | None
    image_path: str
    tags: tuple[str, ...]
    destination: Destination
    pull_integration: str | None = None

    def references(self) -> list[str]:
        """Full target references, when the registry host is known."""
        host = self.destination.host
        if host is None:
            return [f"<ECR>/{self.image_path}:{t}" for t in self.tags]
        repository = target_repository(host, "", self.image_path)
        return [f"{repository}:{tag}" for tag in self.tags]


@dataclass(frozen=True)
class BuildSpecInput:
    """Inputs of one build, substituted."""

    step: str
    image_name: str
    tags: tuple[str, ...]
    context: str
    dockerfile: str | None
    dockerfile_content: str | None
    build_args: tuple[tuple[str, str], ...]
    target: str | None
    no_cache: bool
    push: PushSpec | None


def resolve_push(
    name: str, step: PushStep, scope: Scope, catalog: Catalog, builds: dict[str, str]
) -> PushSpec:
    """Resolve a push step; `builds` maps build step names to image names."""
    sub = scope.with_step(name).substitute
    candidate_step = _step_reference(step.candidate, builds)
    candidate = sub(step.candidate)
    if candidate_step is not None:
        default_name = builds[candidate_step]
    else:
        _check_resolved(name, "candidate", candidate)
        default_name = repository_path(candidate)
    image_name = sub(step.image_name) if step.image_name else default_name
    tags = _tags(name, step.tag, step.tags, sub, lowercase=False)
    destination = _destination(name, step, scope, catalog)
    path = _image_path(name, destination, image_name)
    pull = sub(step.registry_context) if step.registry_context else None
    if pull is None and candidate_step is None:
        domain = candidate.split("/", 1)[0] if "/" in candidate else ""
        found = catalog.for_domain(domain) if looks_like_host(domain) else None
        pull = found.name if found else None
    return PushSpec(name, candidate, candidate_step, path, tags, destination, pull)


def resolve_build(
    name: str, step: BuildStep, scope: Scope, catalog: Catalog, base_dir: Path
) -> BuildSpecInput:
    """Resolve a build step and the push to its registry (Decisions 11)."""
    sub = scope.with_step(name).substitute
    lowercase = step.tag_policy == "lowercase"
    image_name = sub(step.image_name).lower()
    branch_tag = scope.variables.get("CF_BRANCH_TAG_NORMALIZED") or "latest"
    tag = step.tag if step.tag is not None or step.tags else branch_tag
    tags = _tags(name, tag, step.tags, sub, lowercase=lowercase)
    context = base_dir / sub(step.working_directory or ".")
    inline = step.dockerfile if isinstance(step.dockerfile, InlineDockerfile) else None
    args = []
    for item in step.build_arguments:
        key, _, value = sub(item).partition("=")
        args.append((key, value))
    push = None
    target = sub(step.registry) if step.registry else None
    info = catalog.get(target) if target else catalog.default()
    if not step.disable_push and info is not None:
        destination = _integration_destination(info, step.region, step.role_arn)
        destination = _with_role(
            destination, step.aws_session_name, step.aws_duration_seconds
        )
        path = _image_path(name, destination, image_name)
        push = PushSpec(name, name, name, path, tags, destination)
    return BuildSpecInput(
        step=name,
        image_name=image_name,
        tags=tags,
        context=str(context),
        dockerfile=None if inline else sub(str(step.dockerfile)),
        dockerfile_content=sub(inline.content) if inline else None,
        build_args=tuple(args),
        target=sub(step.target) if step.target else None,
        no_cache=step.no_cache,
        push=push,
    )


def _step_reference(candidate: str, builds: dict[str, str]) -> str | None:
    match = VARIABLE.fullmatch(candidate.strip())
    if match and match.group(1) in builds:
        return match.group(1)
    return None


def _check_resolved(step: str, field: str, value: str) -> None:
    left = VARIABLE.search(value)
    if left:
        msg = (
            f"step {step!r}: `{field}` still holds {left.group(0)!r} after substitution; "
            f"define the variable (--var {left.group(1)}=...) or name an earlier build step"
        )
        raise StepError(msg)


def _attempt_probe(text: str) -> str:
    # The attempt number is known only inside the task (tasks/steps.py fills
    # it in per attempt); check the tag as it will be on the first attempt.
    for name in ATTEMPT_VARIABLES:
        text = text.replace("${{" + name + "}}", "1")
    return text


def _tags(
    step: str,
    tag: str | None,
    tags: list[str] | None,
    sub: Callable[[str], str],
    *,
    lowercase: bool,
) -> tuple[str, ...]:
    raw = list(tags) if tags else [tag if tag is not None else "latest"]
    result: list[str] = []
    for item in raw:
        value = sub(item)
        value = value.lower() if lowercase else value
        probe = _attempt_probe(value)
        _check_resolved(step, "tag", probe)
        try:
            check_tag(probe)
        except ImageReferenceError as exc:
            msg = f"step {step!r}: {exc}"
            raise StepError(msg) from None
        if value not in result:
            result.append(value)
    return tuple(result)


def _destination(
    name: str, step: PushStep, scope: Scope, catalog: Catalog
) -> Destination:
    sub = scope.with_step(name).substitute
    registry = sub(step.registry) if step.registry else None
    region = sub(step.region) if step.region else None
    role = sub(step.role_arn) if step.role_arn else None
    if step.provider == "ecr" or (registry is not None and ecr_host(registry)):
        dest = _inline_ecr_destination(registry, region, role)
    elif registry is not None and looks_like_host(registry):
        dest = Destination(
            "docker",
            host=registry,
            region=region,
            role_arn=role,
            inline_credentials=True,
        )
    else:
        info = catalog.get(registry) if registry else catalog.default()
        if info is None:
            known = ", ".join(catalog.names()) or "none"
            what = (
                f"registry integration {registry!r}"
                if registry
                else "a default registry integration"
            )
            msg = f"step {name!r} needs {what}, which does not exist (integrations: {known}); add it with `freshflow registry add`"
            raise StepError(msg)
        dest = _integration_destination(info, region, role)
    return _with_role(dest, step.aws_session_name, step.aws_duration_seconds)


def _inline_ecr_destination(
    registry: str | None, region: str | None, role: str | None
) -> Destination:
    """ECR without an integration: keys from the step, host from `registry`.

    `registry` may be `<account>.dkr.ecr.<region>.amazonaws.com[/prefix]`;
    any other value is ignored, as Codefresh ignores it with `provider: ecr`.
    A `region` other than the host's moves the push to that region's host.
    """
    match = ecr_host(registry) if registry else None
    if match is None:
        return Destination("ecr", region=region, role_arn=role, inline_credentials=True)
    assert registry is not None
    region = region or match.group("region")
    host = match.group(0).replace(f".{match.group('region')}.", f".{region}.", 1)
    return Destination(
        "ecr",
        host=host,
        prefix=registry.partition("/")[2].strip("/"),
        region=region,
        role_arn=role,
        inline_credentials=True,
    )


def _integration_destination(
    info: IntegrationInfo, region: str | None, role: str | None
) -> Destination:
    if info.kind == "docker":
        return Destination(
            "docker", integration=info.name, host=info.domain, prefix=info.prefix
        )
    host = info.domain if "unknown-account" not in info.domain else None
    target_region = region or info.region
    if host and target_region and target_region != info.region:
        account = host.split(".", 1)[0]
        host = f"{account}.dkr.ecr.{target_region}.amazonaws.com"
    return Destination(
        "ecr",
        integration=info.name,
        host=host,
        prefix=info.prefix,
        region=target_region,
        role_arn=role,
    )


def _with_role(
    dest: Destination, session: str | None, duration: int | None
) -> Destination:
    return replace(
        dest,
        session_name=session or dest.session_name,
        duration_seconds=duration or dest.duration_seconds,
    )


def _image_path(step: str, destination: Destination, image_name: str) -> str:
    host = destination.host or "ecr.invalid"
    try:
        repository = target_repository(host, destination.prefix, image_name)
    except ImageReferenceError as exc:
        msg = f"step {step!r}: {exc}"
        raise StepError(msg) from None
    return repository.split("/", 1)[1]
