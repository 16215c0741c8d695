"""Registry integrations as Prefect blocks.

A Codefresh "Docker registry integration" is a block here: the block's name is
the integration's logical name (what `registry:` in codefresh.yml refers to),
and its secrets are `SecretStr` fields, stored encrypted by the Prefect server
and never shown in the UI or the API without `include_secrets`.
"""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import Field, HttpUrl, SecretStr

from flows.integrations import ECR_HOST, IntegrationInfo


class DockerRegistry(Block):
    """A standard Docker registry (Distribution, Docker Hub, GCR, ACR, ...)."""

    _block_type_name: ClassVar[str] = "freshflow Docker registry"
    _block_type_slug: ClassVar[str] = "freshflow-docker-registry"
    _logo_url: ClassVar[HttpUrl] = HttpUrl(
        "https://cdn.sanity.io/images/3ugk85nk/production/14a315b79990200db7341e42553e23650b34bb96-250x250.png"
    )
    _documentation_url: ClassVar[HttpUrl] = HttpUrl(
        "https://codefresh.io/docs/docs/integrations/docker-registries/"
    )
    _description: ClassVar[str] = (
        "A Docker registry integration for freshflow pipelines: the registry "
        "host, optional credentials and repository prefix."
    )

    domain: str = Field(
        description="Registry host as image references name it, e.g. "
        "`registry.example.com` or `127.0.0.1:5000`; `docker.io` for Docker Hub."
    )
    username: str | None = Field(
        default=None, description="User to log in as; empty for anonymous pushes."
    )
    password: SecretStr | None = Field(
        default=None, description="Password or access token for `username`."
    )
    prefix: str = Field(
        default="",
        description="Repository prefix put before every image name pushed here "
        "(e.g. an organisation); not repeated when the name already has it.",
    )
    default: bool = Field(
        default=False,
        description="Use this integration when a step names no `registry`; "
        "build steps also push here after success.",
    )
    primary: bool = Field(
        default=False,
        description="When several integrations share a domain, pull with this one.",
    )

    def info(self, name: str) -> IntegrationInfo:
        """The secret-free summary the pipeline checker and planner use."""
        return IntegrationInfo(
            name, "docker", self.domain, self.prefix, self.default, self.primary
        )


class EcrRegistry(Block):
    """An Amazon ECR registry in one account and region."""

    _block_type_name: ClassVar[str] = "freshflow ECR registry"
    _block_type_slug: ClassVar[str] = "freshflow-ecr-registry"
    _logo_url: ClassVar[HttpUrl] = HttpUrl(
        "https://cdn.sanity.io/images/3ugk85nk/production/d74b16fe84ce626345adf235a47008fea2869a60-225x225.png"
    )
    _documentation_url: ClassVar[HttpUrl] = HttpUrl(
        "https://codefresh.io/docs/docs/integrations/docker-registries/"
    )
    _description: ClassVar[str] = (
        "An Amazon ECR integration for freshflow pipelines: account, region and "
        "AWS credentials (static keys, or the standard AWS chain when empty)."
    )

    region: str = Field(description="AWS region of the registry, e.g. `us-east-1`.")
    account_id: str | None = Field(
        default=None,
        description="12-digit AWS account that owns the registry. When empty, "
        "pushes go to the registry the ECR login is issued for (the account of "
        "the keys, or of `role_arn`).",
    )
    access_key_id: str | None = Field(
        default=None,
        description="AWS access key ID; leave empty to use the environment, "
        "profile or instance role of the worker.",
    )
    secret_access_key: SecretStr | None = Field(
        default=None, description="AWS secret access key for `access_key_id`."
    )
    session_token: SecretStr | None = Field(
        default=None, description="Session token for temporary AWS credentials."
    )
    create_repositories: bool = Field(
        default=False,
        description="Create a repository that does not exist yet instead of "
        "failing the push (ECR rejects pushes to unknown repositories).",
    )
    prefix: str = Field(
        default="", description="Repository prefix put before every image name."
    )
    default: bool = Field(
        default=False,
        description="Use this integration when a step names no `registry`.",
    )
    primary: bool = Field(
        default=False,
        description="When several integrations share a domain, pull with this one.",
    )

    @property
    def domain(self) -> str:
        """The registry host; `unknown-account` until the account is known."""
        account = self.account_id or "unknown-account"
        return f"{account}.dkr.ecr.{self.region}.amazonaws.com"

    def info(self, name: str) -> IntegrationInfo:
        """The secret-free summary the pipeline checker and planner use."""
        return IntegrationInfo(
            name,
            "ecr",
            self.domain,
            self.prefix,
            self.default,
            self.primary,
            region=self.region,
        )


Integration = DockerRegistry | EcrRegistry
INTEGRATION_TYPES: tuple[type[Block], ...] = (DockerRegistry, EcrRegistry)


def is_ecr_domain(domain: str) -> bool:
    return ECR_HOST.match(domain) is not None
