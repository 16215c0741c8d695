"""The five examples of the Codefresh push-step reference, run for real.

Their registry names are bound to local Distribution registries; the
registry's own HTTP API must then show exactly the expected tags, with the
digests `freshflow run --json` reported.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import CliResult
from tests.support.registry import Registry

REVISION = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"

SINGLE_TAG = """\
version: '1.0'
stages:
- 'my build phase'
- 'my push phase'
steps:
  MyAppDockerImage:
    title: Building Docker Image
    stage: 'my build phase'
    type: build
    image_name: my-app-image
    dockerfile: Dockerfile
  pushToMyRegistry:
    stage: 'my push phase'
    type: push
    title: Pushing to a registry
    candidate: ${{MyAppDockerImage}}
    tag: ${{CF_SHORT_REVISION}}
    registry: myazureregistry
"""

BRANCH_TAG = """\
version: '1.0'
stages:
- 'my build phase'
- 'my push phase'
steps:
  MyAppDockerImage:
    title: Building Docker Image
    stage: 'my build phase'
    type: build
    image_name: my-app-image
    dockerfile: Dockerfile
    tag: latest
  pushToMyRegistry:
    stage: 'my push phase'
    type: push
    title: Pushing to a registry
    candidate: ${{MyAppDockerImage}}
    tag: ${{CF_BRANCH_TAG_NORMALIZED_LOWER_CASE}}
    registry: myazureregistry
    image_name: my-user-name/a-different-image-name
"""

MULTI_TAG = """\
version: '1.0'
stages:
- 'my build phase'
- 'my push phase'
steps:
  MyAppDockerImage:
    title: Building Docker Image
    stage: 'my build phase'
    type: build
    image_name: my-app-image
    dockerfile: Dockerfile
  pushToMyRegistry:
    stage: 'my push phase'
    type: push
    title: Pushing to a registry
    candidate: ${{MyAppDockerImage}}
    tags:
    - ${{CF_SHORT_REVISION}}
    - latest
    - 2.0.0
    registry: myazureregistry
"""

PARALLEL = """\
version: '1.0'
stages:
- 'my build phase'
- 'my push phase'
steps:
  MyAppDockerImage:
    title: Building Docker Image
    stage: 'my build phase'
    type: build
    image_name: my-app-image
    dockerfile: Dockerfile
  PushingToRegistries:
    type: parallel
    stage: 'push'
    steps:
      PushingToGoogleRegistry:
        type: push
        title: Pushing To Google Registry
        candidate: ${{MyAppDockerImage}}
        tags:
        - ${{CF_BUILD_ID}}
        - latest
        - production
        registry: gcr
      PushingToDockerRegistry:
        type: push
        title: Pushing To Dockerhub Registry
        candidate: ${{MyAppDockerImage}}
        tag: '${{CF_SHORT_REVISION}}'
        image_name: my-docker-hub-username/my-app-name
        registry: dockerhub
"""


def pushed_digests(result: CliResult, step: str) -> dict[str, str]:
    """`reference -> digest` for what `step` reported as pushed."""
    steps = result.json()["steps"]
    assert isinstance(steps, dict)
    found: dict[str, str] = {}
    for pinned in steps[step]["pushed"]:
        reference, _, digest = pinned.partition("@")
        found[reference] = digest
    return found


def assert_registry_holds(
    registry: Registry, repository: str, digests: dict[str, str]
) -> None:
    """The registry has exactly these tags of `repository`, with these digests."""
    expected = {ref.rsplit(":", 1)[1]: digest for ref, digest in digests.items()}
    assert sorted(registry.tags(repository)) == sorted(expected)
    for tag, digest in expected.items():
        assert registry.manifest_digest(repository, tag) == digest


def run_json(freshflow: Callable[..., CliResult], path: Path, *args: str) -> CliResult:
    result = freshflow("run", str(path), "--revision", REVISION, "--json", *args)
    assert result.exit_code == 0, result.stderr + result.stdout
    assert result.json()["status"] == "success"
    return result


def test_single_tag_to_integration(
    freshflow, workspace, registry_factory, integrations
) -> None:
    registry = registry_factory()
    integrations("myazureregistry", registry)
    result = run_json(freshflow, workspace(SINGLE_TAG), "--branch", "main")

    digests = pushed_digests(result, "pushToMyRegistry")
    assert list(digests) == [f"{registry.host}/my-app-image:1a2b3c4"]
    # The only integration is the default one, so the build pushed there too
    # (Decisions 9 and 11), under the branch name.
    build = pushed_digests(result, "MyAppDockerImage")
    assert list(build) == [f"{registry.host}/my-app-image:main"]
    assert_registry_holds(registry, "my-app-image", {**digests, **build})
    steps = result.json()["steps"]
    assert steps["MyAppDockerImage"]["imageId"] == steps["pushToMyRegistry"]["imageId"]  # type: ignore[index]


def test_branch_tag_and_image_name_override(
    freshflow, workspace, registry_factory, integrations
) -> None:
    registry = registry_factory()
    integrations("myazureregistry", registry)
    result = run_json(
        freshflow, workspace(BRANCH_TAG), "--branch", "Feature/Login-Page#2"
    )

    digests = pushed_digests(result, "pushToMyRegistry")
    repository = "my-user-name/a-different-image-name"
    assert list(digests) == [f"{registry.host}/{repository}:feature_login-page_2"]
    assert_registry_holds(registry, repository, digests)
    # The build's own push (to the only, hence default, integration) keeps
    # the build's name and tag, as the reference describes.
    assert_registry_holds(
        registry, "my-app-image", pushed_digests(result, "MyAppDockerImage")
    )
    assert registry.tags("my-app-image") == ["latest"]


def test_multiple_tags(freshflow, workspace, registry_factory, integrations) -> None:
    registry = registry_factory()
    integrations("myazureregistry", registry)
    result = run_json(freshflow, workspace(MULTI_TAG), "--branch", "main")

    digests = pushed_digests(result, "pushToMyRegistry")
    assert sorted(digests) == sorted(
        f"{registry.host}/my-app-image:{tag}" for tag in ("1a2b3c4", "latest", "2.0.0")
    )
    assert len(set(digests.values())) == 1
    build = pushed_digests(result, "MyAppDockerImage")
    assert_registry_holds(registry, "my-app-image", {**digests, **build})


def test_parallel_push_to_two_registries(
    freshflow, workspace, registry_factory, integrations
) -> None:
    gcr, hub = registry_factory("gcr"), registry_factory("hub")
    integrations("gcr", gcr)
    integrations("dockerhub", hub)
    result = run_json(freshflow, workspace(PARALLEL), "--branch", "main")

    build_id = result.json()["flow_run_id"]
    google = pushed_digests(result, "PushingToGoogleRegistry")
    assert sorted(google) == sorted(
        f"{gcr.host}/my-app-image:{tag}" for tag in (build_id, "latest", "production")
    )
    assert_registry_holds(gcr, "my-app-image", google)
    docker_hub = pushed_digests(result, "PushingToDockerRegistry")
    assert list(docker_hub) == [
        f"{hub.host}/my-docker-hub-username/my-app-name:1a2b3c4"
    ]
    assert_registry_holds(hub, "my-docker-hub-username/my-app-name", docker_hub)
    steps = result.json()["steps"]
    assert steps["PushingToRegistries"]["result"] == "success"  # type: ignore[index]
    assert "not in `stages`" in result.stderr


def test_build_pushes_to_the_default_integration(
    freshflow, workspace, registry_factory, integrations
) -> None:
    default, other = registry_factory("default"), registry_factory("other")
    integrations("local", default, default=True)
    integrations("myazureregistry", other)
    result = run_json(freshflow, workspace(SINGLE_TAG), "--branch", "main")

    build = pushed_digests(result, "MyAppDockerImage")
    assert list(build) == [f"{default.host}/my-app-image:main"]
    assert_registry_holds(default, "my-app-image", build)
    assert_registry_holds(
        other, "my-app-image", pushed_digests(result, "pushToMyRegistry")
    )
