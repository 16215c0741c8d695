"""The test infrastructure works against the real engine, registries and moto."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import docker
import httpx
import pytest

from tests.support.aws import (
    AssumeRoleCall,
    Moto,
    decode_ecr_token,
    ecr_hostname,
    moto_ecr_password,
    start_ecr_registry,
    start_moto,
)
from tests.support.images import (
    BASE_IMAGE,
    build_test_image,
    ensure_base_image,
    push_image,
    remove_images,
)
from tests.support.proxy import ThrottlingProxy
from tests.support.registry import DOCKER_CERTS_DIR, HOSTS_FILE, start_registry
from tests.support.services import ensure_docker, machine_ip
from tests.support.token_server import TokenServer

pytestmark = pytest.mark.services

REPOSITORY = "freshflow-test/smoke"
ECR_IP = "127.0.0.77"

BuildImage = Callable[..., str]


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    client = ensure_docker()
    ensure_base_image(client)
    yield client
    client.close()


@pytest.fixture
def build(client: docker.DockerClient) -> Iterator[BuildImage]:
    """Build a unique test image as a reference; remove the references afterwards."""
    references: list[str] = []

    def build(reference: str, payload_bytes: int = 0) -> str:
        references.append(reference)
        marker = uuid.uuid4().hex
        return build_test_image(client, reference, marker, payload_bytes=payload_bytes)

    yield build
    remove_images(client, *references)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    with start_moto(tmp_path_factory.mktemp("moto")) as moto:
        yield moto


def test_base_image_runs_busybox_shell(client: docker.DockerClient) -> None:
    output = client.containers.run(
        BASE_IMAGE,
        ["sh", "-c", "echo ok; ls /bin/ls"],
        network_mode="none",
        remove=True,
    )

    assert output == b"ok\n/bin/ls\n"


def test_markers_give_distinct_images(build: BuildImage) -> None:
    first = build("freshflow-test/marker:a")
    second = build("freshflow-test/marker:b")

    assert first != second


def test_push_to_plain_registry(
    client: docker.DockerClient, build: BuildImage, tmp_path: Path
) -> None:
    with start_registry(tmp_path) as registry:
        reference = registry.reference(REPOSITORY, "v1")
        build(reference)

        result = push_image(client, reference)

        assert result.errors == ()
        assert registry.tags(REPOSITORY) == ["v1"]
        assert registry.repositories() == [REPOSITORY]
        assert registry.manifest_digest(REPOSITORY, "v1") == result.digest
        assert registry.uploads_in_progress(REPOSITORY) == []


def test_push_to_tls_registry_with_auth(
    client: docker.DockerClient, build: BuildImage, tmp_path: Path
) -> None:
    auth = ("freshflow", uuid.uuid4().hex)
    with start_registry(tmp_path, tls=True, auth=auth) as registry:
        reference = registry.reference(REPOSITORY, "v1")
        build(reference)
        engine_ca = DOCKER_CERTS_DIR / registry.host / "ca.crt"

        result = push_image(client, reference, registry.auth_config())

        assert result.errors == ()
        assert registry.url.startswith("https://")
        assert registry.ca_cert is not None
        assert engine_ca.read_bytes() == registry.ca_cert.read_bytes()
        assert registry.tags(REPOSITORY) == ["v1"]
        assert registry.manifest_digest(REPOSITORY, "v1") == result.digest
    assert not engine_ca.exists()


def test_engine_verifies_tls_outside_loopback(
    client: docker.DockerClient, build: BuildImage, tmp_path: Path
) -> None:
    ip = machine_ip()
    if ip is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    hostname = "registry.freshflow.test"
    with start_registry(
        tmp_path, tls=True, hostname=hostname, bind_address=ip
    ) as registry:
        reference = registry.reference(REPOSITORY, "v1")
        build(reference)

        trusted = push_image(client, reference)
        (DOCKER_CERTS_DIR / registry.host / "ca.crt").unlink()
        untrusted = push_image(client, reference)

        assert trusted.errors == ()
        assert any("x509" in error for error in untrusted.errors), untrusted.errors


def test_wrong_password_is_refused(
    client: docker.DockerClient, build: BuildImage, tmp_path: Path
) -> None:
    with start_registry(tmp_path, tls=True, auth=("freshflow", "right")) as registry:
        reference = registry.reference(REPOSITORY, "v1")
        build(reference)

        result = push_image(
            client, reference, {"username": "freshflow", "password": "wrong"}
        )

        assert result.digest is None
        assert any(
            "unauthorized" in error or "authentication required" in error
            for error in result.errors
        ), result.errors
        assert registry.tags(REPOSITORY) == []


def test_token_registry_refuses_anonymous_push_and_takes_a_token_push(
    client: docker.DockerClient, build: BuildImage, tmp_path: Path
) -> None:
    user = "freshflow"
    with start_registry(tmp_path, token_auth=(user, uuid.uuid4().hex)) as registry:
        tokens = registry.token_server
        assert tokens is not None
        realm = tokens.realm
        reference = registry.reference(REPOSITORY, "v1")
        build(reference)

        anonymous = push_image(client, reference)
        tags_after_anonymous = registry.tags(REPOSITORY)
        authenticated = push_image(client, reference, registry.auth_config())

        assert anonymous.digest is None
        assert any("denied" in error for error in anonymous.errors), anonymous.errors
        assert tags_after_anonymous == []
        assert authenticated.errors == ()
        assert registry.tags(REPOSITORY) == ["v1"]
        assert registry.manifest_digest(REPOSITORY, "v1") == authenticated.digest
        issued = tokens.issued
        assert any(t.subject == "" and t.access == () for t in issued)
        assert any(t.subject == user and t.grants(REPOSITORY, "push") for t in issued)
    with pytest.raises(httpx.ConnectError):
        httpx.get(realm)  # the token server stopped with the registry


def test_token_server_grants_the_user_what_it_asks_and_refuses_others(
    tmp_path: Path,
) -> None:
    with TokenServer(tmp_path, "freshflow", "right") as tokens:
        scopes = [("scope", "repository:a/b:pull,push,delete"), ("scope", "x")]
        scopes.append(("scope", "repository:c:pull registry:catalog:*"))
        right = httpx.get(tokens.realm, params=scopes, auth=("freshflow", "right"))
        anonymous = httpx.get(tokens.realm, params=scopes)
        wrong = httpx.get(tokens.realm, params=scopes, auth=("freshflow", "wrong"))
        other = httpx.get(tokens.realm, params={"service": "elsewhere"})

        assert right.status_code == httpx.codes.OK
        assert right.json()["token"] == right.json()["access_token"]
        user, anon = tokens.issued
        assert user.grants("a/b", "push")
        assert not user.grants("a/b", "delete")
        assert user.grants("c", "pull")
        assert [a.type for a in user.access] == ["repository", "repository", "registry"]
        assert (anonymous.status_code, anon.subject, anon.access) == (200, "", ())
        assert wrong.status_code == httpx.codes.UNAUTHORIZED
        assert other.status_code == httpx.codes.BAD_REQUEST
        assert (tokens.tokens_issued, tokens.refused) == (2, 1)


def test_moto_token_logs_in_to_ecr_standin(
    client: docker.DockerClient, build: BuildImage, moto: Moto, tmp_path: Path
) -> None:
    region = "eu-west-3"
    ecr = _fake_session(region).client("ecr", endpoint_url=moto.endpoint_url)

    data = ecr.get_authorization_token()["authorizationData"][0]
    username, password = decode_ecr_token(data["authorizationToken"])
    account = data["proxyEndpoint"].removeprefix("https://").split(".")[0]

    assert (username, password) == ("AWS", moto_ecr_password(account))
    assert data["proxyEndpoint"] == f"https://{ecr_hostname(account, region)}"
    with start_ecr_registry(tmp_path, account, region, ECR_IP, password) as registry:
        reference = registry.reference(REPOSITORY, "v1")
        build(reference)

        result = push_image(client, reference, registry.auth_config())

        assert result.errors == ()
        assert registry.host == ecr_hostname(account, region)
        assert registry.tags(REPOSITORY) == ["v1"]
    assert registry.host not in HOSTS_FILE.read_text()
    assert not (DOCKER_CERTS_DIR / registry.host).exists()


def test_moto_records_assume_role_parameters(moto: Moto) -> None:
    moto.reset()
    sts = _fake_session("us-east-1").client("sts", endpoint_url=moto.endpoint_url)
    role_arn = "arn:aws:iam::210987654321:role/pusher"

    credentials = sts.assume_role(
        RoleArn=role_arn, RoleSessionName="freshflow-smoke", DurationSeconds=1200
    )["Credentials"]
    ecr = boto3.client(
        "ecr",
        region_name="us-east-1",
        endpoint_url=moto.endpoint_url,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    token = ecr.get_authorization_token()["authorizationData"][0]

    assert moto.assume_role_calls() == [
        AssumeRoleCall(role_arn, "freshflow-smoke", 1200, None, "testing")
    ]
    ecr_call = moto.requests()[-1]
    assert (ecr_call.service, ecr_call.action) == ("ecr", "GetAuthorizationToken")
    assert ecr_call.access_key_id == credentials["AccessKeyId"]
    assert decode_ecr_token(token["authorizationToken"])[1] == moto_ecr_password(
        "210987654321"
    )


def test_throttled_push_is_slow_but_completes(
    client: docker.DockerClient, build: BuildImage, tmp_path: Path
) -> None:
    payload, rate = 150_000, 50_000.0
    with start_registry(tmp_path) as registry:
        # Push the base layer directly so only the payload goes through the proxy.
        direct = registry.reference(REPOSITORY, "base")
        build(direct)
        assert push_image(client, direct).errors == ()
        proxy = ThrottlingProxy("127.0.0.1", registry.port, bytes_per_second=rate)

        with proxy:
            reference = f"{proxy.host}/{REPOSITORY}:slow"
            build(reference, payload_bytes=payload)
            started = time.monotonic()
            result = push_image(client, reference)
            elapsed = time.monotonic() - started

        assert result.errors == ()
        assert proxy.bytes_uploaded >= payload
        assert elapsed >= 0.8 * payload / rate
        assert registry.tags(REPOSITORY) == ["base", "slow"]


def test_refusing_proxy_fails_push(
    client: docker.DockerClient, build: BuildImage, tmp_path: Path
) -> None:
    with (
        start_registry(tmp_path) as registry,
        ThrottlingProxy("127.0.0.1", registry.port) as proxy,
    ):
        proxy.refuse()
        reference = f"{proxy.host}/{REPOSITORY}:refused"
        build(reference)

        result = push_image(client, reference)

        assert result.digest is None
        assert result.errors
        assert registry.tags(REPOSITORY) == []


def _fake_session(region: str) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=region,
    )
