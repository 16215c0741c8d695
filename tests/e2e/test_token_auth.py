"""Pushes to a registry with Bearer token auth, as Docker Hub, GHCR and Harbor use.

The registry answers with a ``WWW-Authenticate: Bearer`` challenge, and the
client fetches a token from ``tests.support.token_server`` with the
integration's credentials. Each case runs through both pushers
(``FRESHFLOW_PUSH_VIA``): freshflow's own registry client, and the engine.
The token server records who fetched each token (its User-Agent), so a test
knows which of the two answered the challenge.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

import docker
import pytest

from flows.errors import RegistryAuthError
from tasks.engine import RegistryAuth
from tasks.registry_api import RegistryClient
from tasks.registry_transport import EngineRegistryRules
from tests.e2e.conftest import CliResult
from tests.support.leaks import prefect_texts
from tests.support.registry import Registry
from tests.support.token_server import IssuedToken, TokenServer

USER, PASSWORD = "pusher", "t0ken-Pa55word-for-tests"
WRONG_PASSWORD = "not-the-t0ken-password"
TAGS = ("latest", "v1")

PUSH = """\
version: '1.0'
steps:
  build:
    type: build
    image_name: app
    disable_push: true
  push:
    type: push
    candidate: ${{build}}
    tags: [v1, latest]
    registry: tokens
"""

# The client that fetches the push token on each path.
CLIENTS = {"registry": "python-httpx/", "engine": "docker/"}
push_via = pytest.mark.parametrize("via", list(CLIENTS))


@pytest.fixture
def token_registry(registry_factory: Callable[..., Registry]) -> Registry:
    return registry_factory("tokens", token_auth=(USER, PASSWORD))


def tokens_of(registry: Registry) -> TokenServer:
    assert registry.token_server is not None
    return registry.token_server


def push_tokens(registry: Registry) -> list[IssuedToken]:
    """The tokens that allowed pushing to ``app``, not the helpers' pull tokens."""
    return [t for t in tokens_of(registry).issued if t.grants("app", "push")]


def push_step(result: CliResult) -> dict[str, object]:
    steps = result.json()["steps"]
    assert isinstance(steps, dict)
    step: dict[str, object] = steps["push"]
    return step


@push_via
def test_push_fetches_a_token_and_tags_what_it_reports(
    freshflow, workspace, token_registry, integrations, monkeypatch, via
) -> None:
    monkeypatch.setenv("FRESHFLOW_PUSH_VIA", via)
    integrations("tokens", token_registry)
    result = freshflow("run", str(workspace(PUSH)), "--branch", "main", "--json")

    assert result.exit_code == 0, result.stdout + result.stderr
    assert token_registry.tags("app") == list(TAGS)
    assert sorted(push_step(result)["pushed"]) == [  # type: ignore[call-overload]
        f"{token_registry.reference('app', tag)}@"
        f"{token_registry.manifest_digest('app', tag)}"
        for tag in TAGS
    ]
    tokens = push_tokens(token_registry)
    assert {t.subject for t in tokens} == {USER}
    assert all(t.user_agent.startswith(CLIENTS[via]) for t in tokens), tokens
    if via == "registry":
        assert len(tokens) == 1  # one token for all blobs and both tags


@push_via
def test_wrong_password_fails_unauthorized_and_pushes_nothing(
    freshflow, workspace, token_registry, integrations, monkeypatch, via
) -> None:
    monkeypatch.setenv("FRESHFLOW_PUSH_VIA", via)
    integrations("tokens", dataclasses.replace(token_registry, password=WRONG_PASSWORD))
    result = freshflow("run", str(workspace(PUSH)), "--branch", "main", "--json")

    assert result.exit_code == 1, result.stdout + result.stderr
    step = push_step(result)
    assert step["result"] == "failure"
    assert "unauthorized" in str(step["reason"])
    assert "check the integration's username and password" in str(step["reason"])
    assert step["pushed"] == []
    assert tokens_of(token_registry).refused > 0
    assert push_tokens(token_registry) == []
    assert token_registry.tags("app") == []


@push_via
def test_no_credentials_get_a_token_that_grants_nothing(
    freshflow, workspace, token_registry, integrations, monkeypatch, via
) -> None:
    monkeypatch.setenv("FRESHFLOW_PUSH_VIA", via)
    integrations("tokens", token_registry, with_auth=False)
    result = freshflow("run", str(workspace(PUSH)), "--branch", "main", "--json")

    assert result.exit_code == 1, result.stdout + result.stderr
    step = push_step(result)
    assert step["result"] == "failure"
    assert "denied" in str(step["reason"]) or "unauthorized" in str(step["reason"])
    anonymous = [t for t in tokens_of(token_registry).issued if t.subject == ""]
    assert anonymous
    assert all(t.access == () for t in anonymous)
    assert token_registry.tags("app") == []


def test_no_password_or_token_in_the_output(
    freshflow, workspace, token_registry, integrations, monkeypatch
) -> None:
    """A good and a refused run, with and without ``--json``; then Prefect's records."""
    monkeypatch.setenv("FRESHFLOW_PUSH_VIA", "registry")
    pipeline = str(workspace(PUSH))
    runs: list[CliResult] = []
    for password in (PASSWORD, WRONG_PASSWORD):
        integrations("tokens", dataclasses.replace(token_registry, password=password))
        runs.append(freshflow("run", pipeline, "--branch", "main", "--json"))
        runs.append(freshflow("run", pipeline, "--branch", "main"))
    assert [r.exit_code for r in runs] == [0, 0, 1, 1]

    issued = [t.token for t in tokens_of(token_registry).issued]
    assert issued  # the successful runs fetched tokens
    secrets = (PASSWORD, WRONG_PASSWORD, *issued)
    for run in runs:
        output = run.stdout + run.stderr
        assert not [s for s in secrets if s in output]
    texts = prefect_texts([str(runs[0].json()["flow_run_id"])])
    assert not [t for t in texts for s in secrets if s in t]


def test_a_new_repository_mounts_layers_with_a_token_for_both(
    freshflow, workspace, token_registry, integrations, monkeypatch
) -> None:
    monkeypatch.setenv("FRESHFLOW_PUSH_VIA", "registry")
    integrations("tokens", token_registry)
    first = freshflow("run", str(workspace(PUSH)), "--branch", "main", "--json")
    assert first.exit_code == 0, first.stdout + first.stderr

    copy = PUSH.replace("registry: tokens", "registry: tokens\n    image_name: copy")
    second = freshflow("run", str(workspace(copy)), "--branch", "main", "--json")

    assert second.exit_code == 0, second.stdout + second.stderr
    assert token_registry.tags("copy") == list(TAGS)
    both = [
        t
        for t in tokens_of(token_registry).issued
        if t.grants("copy", "push") and t.grants("app", "pull")
    ]
    assert both  # the mount asked for pull on the source as well


# freshflow's own client, straight against the token registry.

REFERENCE_TAG = "v1"


@pytest.fixture
def connect(
    token_registry: Registry, docker_client: docker.DockerClient
) -> Iterator[Callable[[RegistryAuth | None], RegistryClient]]:
    rules = EngineRegistryRules.of(docker_client.api)
    opened: list[RegistryClient] = []

    def make(auth: RegistryAuth | None) -> RegistryClient:
        reference = token_registry.reference("app", REFERENCE_TAG)
        client = RegistryClient.connect(token_registry.host, auth, rules, reference)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


def _reference(registry: Registry) -> str:
    return registry.reference("app", REFERENCE_TAG)


def test_a_token_is_renewed_before_it_expires(token_registry, connect) -> None:
    tokens = tokens_of(token_registry)
    tokens.lifetime = 4  # renewed after half of it, while still valid
    client = connect(RegistryAuth(token_registry.host, USER, PASSWORD))
    reference = _reference(token_registry)
    assert not client.has_blob("app", "sha256:" + "0" * 64, reference)
    assert len(push_tokens(token_registry)) == 1
    time.sleep(2.5)
    assert not client.has_blob("app", "sha256:" + "0" * 64, reference)
    renewed = push_tokens(token_registry)
    assert len(renewed) == 2
    assert renewed[1].issued_at - renewed[0].issued_at < tokens.lifetime


def test_anonymous_refusal_fetches_one_token_and_says_to_give_credentials(
    token_registry, connect
) -> None:
    client = connect(None)
    with pytest.raises(RegistryAuthError) as refused:
        client.has_blob("app", "sha256:" + "0" * 64, _reference(token_registry))
    message = str(refused.value)
    assert f"registry {token_registry.host!r}, repository 'app', tag 'v1'" in message
    assert "give the integration credentials" in message
    assert tokens_of(token_registry).tokens_issued == 1


def test_credentials_without_push_access_are_denied_not_unauthorized(
    token_registry, connect
) -> None:
    tokens_of(token_registry).repository_actions = frozenset({"pull"})
    client = connect(RegistryAuth(token_registry.host, USER, PASSWORD))
    with pytest.raises(RegistryAuthError) as refused:
        client.start_upload("app", _reference(token_registry))
    message = str(refused.value)
    assert "access denied" in message
    assert "may not push to this repository" in message
    assert "check the integration's username and password" not in message
    assert tokens_of(token_registry).tokens_issued == 1


def test_a_refused_password_names_the_push_and_the_token_service(
    token_registry, connect
) -> None:
    client = connect(RegistryAuth(token_registry.host, USER, WRONG_PASSWORD))
    with pytest.raises(RegistryAuthError) as refused:
        client.has_blob("app", "sha256:" + "0" * 64, _reference(token_registry))
    message = str(refused.value)
    assert f"registry {token_registry.host!r}, repository 'app'" in message
    assert "token service" in message
    assert "check the integration's username and password" in message
    assert WRONG_PASSWORD not in message
    assert tokens_of(token_registry).refused == 1
