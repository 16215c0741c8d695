"""Credentials for a push or pull: from an integration block or inline fields.

Every secret loaded here is registered for log redaction before anything
else happens to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from blocks.registry import DockerRegistry, EcrRegistry
from blocks.store import load_integration
from flows.errors import IntegrationError
from flows.integrations import ECR_HOST
from flows.redaction import register
from flows.resolve import Destination
from tasks import vault
from tasks.engine import RegistryAuth

if TYPE_CHECKING:
    from tasks.ecr import AwsKeys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """A registry host to push to and the credentials for it."""

    host: str
    auth: RegistryAuth | None
    create_repositories: bool = False


def docker_auth(integration: str) -> tuple[str, RegistryAuth | None]:
    """Host and credentials of a registry integration (ECR: a login to it)."""
    block = load_integration(integration)
    if isinstance(block, EcrRegistry):
        host = block.domain if block.account_id else None
        ecr = Destination("ecr", integration, host, region=block.region)
        target = _ecr_target(ecr, "", f"registry {integration!r}")
        return target.host, target.auth
    if not isinstance(block, DockerRegistry):
        msg = f"integration {integration!r} is not a registry integration"
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


@dataclass(frozen=True)
class _EcrAccess:
    """Who logs in to ECR, in which region, and whether repositories are created."""

    keys: AwsKeys
    region: str
    create_repositories: bool


def _ecr_target(
    destination: Destination, run_id: str, step: str, *, refresh: bool = False
) -> Target:
    """Log in to ECR; push to the destination's host, else the token's registry.

    An integration without an account, or inline mode without a registry host,
    pushes to the registry the token was issued for (its proxy endpoint).
    """
    from tasks.ecr import ecr_login

    access = _ecr_access(destination, run_id, step)
    login = ecr_login(
        access.keys,
        access.region,
        role_arn=destination.role_arn,
        session_name=destination.session_name,
        duration_seconds=destination.duration_seconds,
        refresh=refresh,
    )
    host = destination.host or login.host
    auth = RegistryAuth(host, login.auth.username, login.auth.password)
    log.debug("ECR login for %s (token issued for %s)", host, login.host)
    return Target(host, auth, access.create_repositories)


def refresh_ecr_target(destination: Destination, run_id: str, step: str) -> Target:
    """A fresh ECR login after the registry refused the cached one."""
    return _ecr_target(destination, run_id, step, refresh=True)


def _ecr_access(destination: Destination, run_id: str, step: str) -> _EcrAccess:
    """Keys and region from the step's inline fields or its ECR integration."""
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
        return _EcrAccess(keys, region, create_repositories=False)

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
    region = destination.region or block.region
    return _EcrAccess(keys, region, block.create_repositories)


def ensure_ecr_repository(
    destination: Destination, run_id: str, step: str, repository: str
) -> None:
    """Check (or create, when the integration allows it) an ECR repository."""
    from tasks.ecr import ensure_repository

    access = _ecr_access(destination, run_id, step)
    match = ECR_HOST.match(destination.host or "")
    ensure_repository(
        access.keys,
        access.region,
        repository,
        create=access.create_repositories,
        account=match.group("account") if match else None,
        role_arn=destination.role_arn,
        session_name=destination.session_name,
        duration_seconds=destination.duration_seconds,
    )
