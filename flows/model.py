"""The codefresh.yml input model: pydantic models for the root and each step.

Field names are Codefresh's.  Every model forbids unknown keys, so a typo is
reported (with a suggestion) instead of being ignored.  Scalars arrive as text
from `flows.yamlsource`; pydantic turns them into numbers and booleans where a
field wants one.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

StepState = Literal[
    "success",
    "failure",
    "skipped",
    "pending",
    "running",
    "terminating",
    "terminated",
    "finished",
    "approved",
    "denied",
]

KNOWN_STEP_TYPES = frozenset(
    {
        "git-clone",
        "build",
        "deploy",
        "composition",
        "launch-composition",
        "parallel",
        "push",
        "travis",
        "simple_travis",
        "integration-test",
        "push-tag",
        "pending-approval",
        "services",
        "freestyle",
        "freestyle-ssh",
        "github-action",
    }
)
SUPPORTED_STEP_TYPES = frozenset({"build", "push", "parallel"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class BranchFilter(_Model):
    only: list[str] | None = None
    ignore: list[str] | None = None


class ConditionSet(_Model):
    all: dict[str, str] | None = None
    any: dict[str, str] | None = None


_ON_SUCCESS: list[StepState] = ["success"]


class StepDependency(_Model):
    name: str
    on: list[StepState] = Field(default_factory=lambda: _ON_SUCCESS.copy())


class StepDependencyGroup(_Model):
    all: list[StepDependency] | None = None
    any: list[StepDependency] | None = None


class When(_Model):
    branch: BranchFilter | None = None
    condition: ConditionSet | None = None
    steps: list[StepDependency] | StepDependencyGroup | None = None


class Retry(_Model):
    max_attempts: int = Field(1, alias="maxAttempts", ge=1)
    delay: float = Field(5, gt=0)
    exponential_factor: float = Field(1, alias="exponentialFactor", gt=0)


class Credentials(_Model):
    username: str
    password: str


EntityType = Literal["project", "pipeline", "build", "image"]


class EvaluateValue(_Model):
    """`{evaluate: expression}`: the value is what the expression yields."""

    evaluate: str


def _value_kind(value: object) -> str:
    return "evaluate(mapping)" if isinstance(value, dict) else "text(scalar)"


def _entry_kind(entry: object) -> str:
    return "name(bare)" if isinstance(entry, str) else "entry(mapping)"


# Scalars arrive as text; `flows.post_steps` reads numbers and booleans back.
# The unions are discriminated so a wrong shape is one error, not one per
# member; the tags hold "(" so `flows.loader` keeps them out of YAML paths.
MetadataValue = Annotated[
    Annotated[str, Tag("text(scalar)")]
    | Annotated[EvaluateValue, Tag("evaluate(mapping)")],
    Discriminator(_value_kind),
]
# `- name: value`, or a bare `- name` (the value true).
MetadataEntry = Annotated[
    Annotated[str, Tag("name(bare)")]
    | Annotated[dict[str, MetadataValue | None], Tag("entry(mapping)")],
    Discriminator(_entry_kind),
]


class MetadataOperation(_Model):
    """`metadata.set` of a post-step operation: entries per image key."""

    set: list[dict[str, list[MetadataEntry]]] = Field(default_factory=list)


class BuildMetadata(_Model):
    """A build step's own `metadata.set`: entries for the image it builds."""

    set: list[MetadataEntry] = Field(default_factory=list)


class AnnotationTarget(_Model):
    """One entity to annotate, with the annotations to set on it."""

    entity_id: str | None = None
    entity_type: EntityType = "build"
    annotations: list[MetadataEntry] = Field(default_factory=list)
    display: str | None = None


class AnnotationUnsetTarget(_Model):
    """One entity, with the names of the annotations to remove from it."""

    entity_id: str | None = None
    entity_type: EntityType = "build"
    annotations: list[str] = Field(default_factory=list)


class AnnotationOperation(_Model):
    set: list[AnnotationTarget] = Field(default_factory=list)
    unset: list[AnnotationUnsetTarget] = Field(default_factory=list)


class PostStepOperations(_Model):
    metadata: MetadataOperation | None = None
    annotations: AnnotationOperation | None = None


class StepBase(_Model):
    """Fields every Codefresh step accepts."""

    type: str = "freestyle"
    title: str | None = None
    description: str | None = None
    stage: str | None = None
    fail_fast: bool | None = None
    strict_fail_fast: bool | None = None
    when: When | None = None
    timeout: str | None = None
    retry: Retry | None = None
    on_success: PostStepOperations | None = None
    on_fail: PostStepOperations | None = None
    on_finish: PostStepOperations | None = None
    hooks: dict[str, object] | None = None
    debug: dict[str, object] | None = None
    env: dict[str, object] | None = None
    docker_machine: dict[str, object] | None = None


class EcrFields(_Model):
    """Amazon ECR fields shared by push and build steps."""

    region: str | None = None
    role_arn: str | None = None
    aws_session_name: str | None = None
    aws_duration_seconds: int | None = None


class PushStep(StepBase, EcrFields):
    """`type: push`: push an image under one or more tags."""

    type: Literal["push"] = "push"
    candidate: str
    tag: str | None = None
    tags: list[str] | None = None
    image_name: str | None = None
    registry: str | None = None
    registry_context: str | None = None
    provider: Literal["standard", "docker", "ecr"] | None = None
    credentials: Credentials | None = None
    access_key_id: str | None = Field(None, alias="accessKeyId")
    secret_access_key: str | None = Field(None, alias="secretAccessKey")


class InlineDockerfile(_Model):
    content: str


class BuildStep(StepBase, EcrFields):
    """`type: build`: build an image with the Docker Engine."""

    type: Literal["build"] = "build"
    image_name: str
    tag: str | None = None
    tags: list[str] | None = None
    tag_policy: Literal["lowercase", "original"] = "lowercase"
    dockerfile: str | InlineDockerfile = "Dockerfile"
    working_directory: str | None = None
    build_arguments: list[str] = Field(default_factory=list)
    target: str | None = None
    no_cache: bool = False
    no_cf_cache: bool = False
    cache_from: list[str] = Field(default_factory=list)
    registry: str | None = None
    registry_contexts: list[str] = Field(default_factory=list)
    disable_push: bool = False
    metadata: BuildMetadata | None = None
    annotations: AnnotationOperation | None = None
    # Accepted so that real pipelines validate; `flows.validation` reports
    # which of these freshflow cannot honour yet.
    cache_to: list[str] | None = None
    squash: bool | None = None
    buildkit: bool | None = None
    progress: str | None = None
    ssh: object | None = None
    secrets: object | None = None
    buildx: object | None = None
    platform: str | None = None
    cosign: dict[str, object] | None = None
    provider: dict[str, object] | None = None


class SuccessCriteria(_Model):
    steps: StepSelection | list[str] | None = None
    condition: ConditionSet | None = None


class StepSelection(_Model):
    only: list[str] | None = None
    ignore: list[str] | None = None


class ParallelStep(StepBase):
    """`type: parallel`: children run at the same time."""

    type: Literal["parallel"] = "parallel"
    steps: dict[str, Step]
    success_criteria: SuccessCriteria | None = None


class OtherStep(BaseModel):
    """A known step type freshflow does not run; kept to report it by name."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str = "freestyle"
    title: str | None = None
    stage: str | None = None


Step = Annotated[PushStep | BuildStep | ParallelStep | OtherStep, "step"]


class Pipeline(_Model):
    """The root of codefresh.yml."""

    version: float = Field(gt=0)
    steps: dict[str, Step]
    stages: list[str] = Field(default_factory=list)
    mode: Literal["sequential", "parallel"] = "sequential"
    fail_fast: bool | None = None
    strict_fail_fast: bool | None = None
    hooks: dict[str, object] | None = None
    success_criteria: dict[str, object] | None = None
    indicators: list[object] | None = None
    services: dict[str, object] | None = None
    build_version: Literal["v1", "v2"] | None = None


SuccessCriteria.model_rebuild()
ParallelStep.model_rebuild()
