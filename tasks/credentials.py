"""Credentials for a push or pull: from an integration block or inline fields.

Every secret loaded here is registered for log redaction before anything
else happens to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from blocks.registry import DockerRegistry, EcrRegistry
from blocks.store import load_integration
from flows.errors import IntegrationError
from flows.redaction import register
from flows.resolve import Destination
from tasks import vault
from tasks.engine import RegistryAuth

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """A registry host to push to and the credentials for it."""

    host: str
    auth: RegistryAuth | None
    create_repositories: bool = False


def docker_auth(integration: str) -> tuple[str, RegistryAuth | None]:
    """Host and credentials of a Docker registry integration."""
    block = load_integration(integration)
    if not isinstance(block, DockerRegistry):
        msg = f"integration {integration!r} is an ECR registry; it cannot be used here"
        raise IntegrationError(msg)
    password = block.password.get_secret_value() if block.password else None
    register(password)
    if not block.username or password is None:
        return block.domain, None
    return block.domain, RegistryAuth(block.domain, block.username, password)


def inline_auth(run_id: str, step: str, host: str) -> RegistryAuth | None:
    """Credentials written in the step itself (`credentials:`), if any."""
    username = vault.get(run_id, step, "username")
    password = vault.get(run_id, step, "password")
    if username is None or password is None:
        return None
    return RegistryAuth(host, username, password)


def resolve_target(destination: Destination, run_id: str, step: str) -> Target:
    """Where to push and with which credentials."""
    if destination.kind == "ecr":
        return _ecr_target(destination, run_id, step)
    if destination.inline_credentials:
        assert destination.host is not None
        return Target(destination.host, inline_auth(run_id, step, destination.host))
    assert destination.integration is not None
    host, auth = docker_auth(destination.integration)
    return Target(host, auth)


def _ecr_target(
    destination: Destination, run_id: str, step: str, *, refresh: bool = False
) -> Target:
    from tasks.ecr import ecr_login

    keys, region, create = _ecr_keys(destination, run_id, step)
    login = ecr_login(
        keys,
        region,
        role_arn=destination.role_arn,
        session_name=destination.session_name,
        duration_seconds=destination.duration_seconds,
        refresh=refresh,
    )
    return Target(login.host, login.auth, create)


def refresh_ecr_target(destination: Destination, run_id: str, step: str) -> Target:
    """A fresh ECR login after the registry refused the cached one."""
    return _ecr_target(destination, run_id, step, refresh=True)


def _ecr_keys(destination: Destination, run_id: str, step: str):  # type: ignore[no-untyped-def]
    from tasks.ecr import AwsKeys

    if destination.integration is None:
        region = destination.region
        if region is None:
            msg = f"step {step!r} pushes to ECR without a region; set `region` or a registry host <account>.dkr.ecr.<region>.amazonaws.com"
            raise IntegrationError(msg)
        keys = AwsKeys(
            vault.get(run_id, step, "access_key_id"),
            vault.get(run_id, step, "secret_access_key"),
        )
        return keys, region, False
    block = load_integration(destination.integration)
    if not isinstance(block, EcrRegistry):
        msg = f"integration {destination.integration!r} is not an ECR registry"
        raise IntegrationError(msg)
    secret = (
        block.secret_access_key.get_secret_value() if block.secret_access_key else None
    )
    token = block.session_token.get_secret_value() if block.session_token else None
    register(secret)
    register(token)
    keys = AwsKeys(block.access_key_id, secret, token)
    return keys, destination.region or block.region, block.create_repositories


def ensure_ecr_repository(
    destination: Destination, run_id: str, step: str, repository: str
) -> None:
    """Check (or create, when the integration allows it) an ECR repository."""
    from tasks.ecr import ensure_repository

    keys, region, create = _ecr_keys(destination, run_id, step)
    ensure_repository(
        keys,
        region,
        repository,
        create=create,
        role_arn=destination.role_arn,
        session_name=destination.session_name,
        duration_seconds=destination.duration_seconds,
    )
