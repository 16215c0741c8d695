"""ECR login and repository checks against a real ``moto_server``.

Two servers run per module: an open one for the normal paths, and one with
IAM enforced (``INITIAL_NO_AUTH_ACTION_COUNT``) for refused credentials.
Code under test finds them through ``AWS_ENDPOINT_URL`` alone.  What reached
AWS is read from moto's request recording (``Moto.requests``).

Moto's ECR tokens always expire at 2015-01-01, so tests about caching set the
module clock to 2014-12-31; the real clock would make every token stale.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import boto3
import pytest

from flows.errors import AwsError
from flows.redaction import redact
from tasks import ecr
from tasks.ecr import (
    AwsKeys,
    caller_account,
    ecr_login,
    ensure_repository,
    forget_logins,
)
from tests.support.aws import FAKE_KEY, Moto, moto_ecr_password, start_moto
from tests.support.services import free_port

pytestmark = pytest.mark.services

KEYS = AwsKeys(FAKE_KEY, FAKE_KEY)
ACCOUNT = "123456789012"
ROLE_ACCOUNT = "210987654321"
ROLE_ARN = f"arn:aws:iam::{ROLE_ACCOUNT}:role/pusher"
BEFORE_MOTO_EXPIRY = datetime(2014, 12, 31, tzinfo=UTC)
ENV_TO_CLEAR = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL_ECR",
    "AWS_ENDPOINT_URL_STS",
)


@dataclass(frozen=True)
class Iam:
    """A moto server that enforces IAM, with one user who may do nothing."""

    moto: Moto
    denied: AwsKeys


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    with start_moto(tmp_path_factory.mktemp("moto")) as moto:
        yield moto


@pytest.fixture(scope="module")
def iam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Iam]:
    # The first two actions (create user, create key) run before IAM is on.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "2")
        server = start_moto(tmp_path_factory.mktemp("moto-iam"))
    with server:
        iam = _session(KEYS).client("iam", endpoint_url=server.endpoint_url)
        iam.create_user(UserName="nobody")
        key = iam.create_access_key(UserName="nobody")["AccessKey"]
        yield Iam(server, AwsKeys(key["AccessKeyId"], key["SecretAccessKey"]))


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No AWS settings from the machine; every test starts with empty caches."""
    for name in ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    forget_logins()
    yield
    forget_logins()


@pytest.fixture
def aws(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> Moto:
    """The open moto server, reset, as the AWS endpoint."""
    moto.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
    return moto


@pytest.fixture
def denied(iam: Iam, monkeypatch: pytest.MonkeyPatch) -> AwsKeys:
    """Keys of a user without permissions, with the IAM server as endpoint."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", iam.moto.endpoint_url)
    return iam.denied


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ecr, "_utcnow", lambda: BEFORE_MOTO_EXPIRY)


def _session(keys: AwsKeys, region: str = "us-east-1") -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
        region_name=region,
    )


def _calls(moto: Moto, action: str) -> int:
    return sum(1 for request in moto.requests() if request.action == action)


def test_login_with_static_keys(aws: Moto) -> None:
    login = ecr_login(KEYS, "us-east-1")

    host = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
    assert (login.host, login.account, login.region) == (host, ACCOUNT, "us-east-1")
    assert login.auth.registry == host
    assert login.auth.username == "AWS"
    assert login.auth.password == moto_ecr_password(ACCOUNT)
    assert login.expires_at == datetime(2015, 1, 1).astimezone(UTC)
    assert login.expires_at.tzinfo is UTC
    assert redact(f"token {login.auth.password}") == "token ***"
    assert login.auth.password not in repr(login)


def test_login_through_the_standard_chain(
    aws: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_KEY)

    login = ecr_login(AwsKeys(), "eu-central-1")

    assert login.host == f"{ACCOUNT}.dkr.ecr.eu-central-1.amazonaws.com"


@pytest.mark.usefixtures("frozen_clock")
def test_login_is_cached(aws: Moto) -> None:
    first = ecr_login(KEYS, "us-east-1")
    second = ecr_login(KEYS, "us-east-1")

    assert second is first
    assert _calls(aws, "GetAuthorizationToken") == 1


def test_expired_login_is_not_reused(aws: Moto) -> None:
    ecr_login(KEYS, "us-east-1")
    ecr_login(KEYS, "us-east-1")

    assert _calls(aws, "GetAuthorizationToken") == 2


@pytest.mark.usefixtures("frozen_clock")
def test_refresh_replaces_the_cached_login(aws: Moto) -> None:
    first = ecr_login(KEYS, "us-east-1")
    refreshed = ecr_login(KEYS, "us-east-1", refresh=True)
    after = ecr_login(KEYS, "us-east-1")

    assert refreshed is not first
    assert after is refreshed
    assert _calls(aws, "GetAuthorizationToken") == 2


@pytest.mark.usefixtures("frozen_clock")
def test_login_in_another_region(aws: Moto) -> None:
    east = ecr_login(KEYS, "us-east-1")
    west = ecr_login(KEYS, "us-west-2")

    assert west.host == f"{ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com"
    assert west.region == "us-west-2"
    assert east.host != west.host
    regions = [r.region for r in aws.requests() if r.action == "GetAuthorizationToken"]
    assert regions == ["us-east-1", "us-west-2"]


def test_role_is_assumed_with_session_name_and_duration(aws: Moto) -> None:
    login = ecr_login(
        KEYS,
        "eu-west-1",
        role_arn=ROLE_ARN,
        session_name="build-42",
        duration_seconds=900,
    )

    # Moto answers for the account of the role only with the role's keys.
    assert login.host == f"{ROLE_ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com"
    [call] = aws.assume_role_calls()
    assert (call.role_arn, call.session_name) == (ROLE_ARN, "build-42")
    assert call.duration_seconds == 900
    assert call.access_key_id == FAKE_KEY
    [token] = [r for r in aws.requests() if r.action == "GetAuthorizationToken"]
    assert token.access_key_id is not None
    assert token.access_key_id.startswith("ASIA")


def test_role_defaults_reach_sts(aws: Moto) -> None:
    ecr_login(KEYS, "us-east-1", role_arn=ROLE_ARN)

    [call] = aws.assume_role_calls()
    assert (call.session_name, call.duration_seconds) == ("default-session-name", 3600)


@pytest.mark.usefixtures("frozen_clock")
def test_assumed_role_is_reused(aws: Moto) -> None:
    ecr_login(KEYS, "us-east-1", role_arn=ROLE_ARN)
    ecr_login(KEYS, "us-east-1", role_arn=ROLE_ARN)
    ensure_repository(KEYS, "us-east-1", "app/web", create=True, role_arn=ROLE_ARN)

    assert len(aws.assume_role_calls()) == 1
    assert _calls(aws, "GetAuthorizationToken") == 1


@pytest.mark.parametrize("duration", [899, 3601])
def test_duration_out_of_range(aws: Moto, duration: int) -> None:
    with pytest.raises(AwsError, match=r"900-3600") as error:
        ecr_login(KEYS, "us-east-1", role_arn=ROLE_ARN, duration_seconds=duration)

    assert str(duration) in str(error.value)
    assert aws.assume_role_calls() == []


def test_missing_repository_is_an_error(aws: Moto) -> None:
    with pytest.raises(AwsError) as error:
        ensure_repository(KEYS, "us-west-2", "app/web", create=False)

    message = str(error.value)
    assert "'app/web'" in message
    assert ACCOUNT in message
    assert "'us-west-2'" in message
    assert "create-repository --repository-name app/web --region us-west-2" in message
    assert "create_repositories" in message


def test_missing_repository_is_created(
    aws: Moto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tasks.ecr")

    ensure_repository(KEYS, "us-west-2", "app/web", create=True)
    ensure_repository(KEYS, "us-west-2", "app/web", create=False)

    described = _session(KEYS, "us-west-2").client("ecr").describe_repositories()
    names = [repo["repositoryName"] for repo in described["repositories"]]
    assert names == ["app/web"]
    created = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(created) == 1
    assert "'app/web'" in created[0].getMessage()


def test_assume_role_denied(denied: AwsKeys) -> None:
    with pytest.raises(AwsError, match="sts:AssumeRole") as error:
        ecr_login(denied, "us-east-1", role_arn=ROLE_ARN)

    assert repr(ROLE_ARN) in str(error.value)
    assert "trust policy" in str(error.value)


def test_get_authorization_token_denied(denied: AwsKeys) -> None:
    with pytest.raises(AwsError, match="ecr:GetAuthorizationToken permission"):
        ecr_login(denied, "us-east-1")


def test_describe_repositories_denied(denied: AwsKeys) -> None:
    with pytest.raises(AwsError, match="ecr:DescribeRepositories permission"):
        ensure_repository(denied, "us-east-1", "app/web", create=True)


@pytest.mark.parametrize(
    ("which", "code"),
    [
        ("unknown key", "InvalidClientTokenId"),
        ("wrong secret", "SignatureDoesNotMatch"),
    ],
)
def test_invalid_keys(denied: AwsKeys, which: str, code: str) -> None:
    key_id = "AKIAIOSFODNN7EXAMPLE" if which == "unknown key" else denied.access_key_id
    keys = AwsKeys(key_id, "not-the-secret-key")

    with pytest.raises(AwsError, match="invalid or expired") as error:
        ecr_login(keys, "us-east-1")

    assert code in str(error.value)
    assert "not-the-secret-key" not in str(error.value)


def test_invalid_keys_on_assume_role(denied: AwsKeys) -> None:
    keys = AwsKeys("AKIAIOSFODNN7EXAMPLE", "not-the-secret-key")

    with pytest.raises(AwsError, match=r"sts:AssumeRole .*invalid or expired"):
        ecr_login(keys, "us-east-1", role_arn=ROLE_ARN)


def test_no_credentials(aws: Moto) -> None:
    with pytest.raises(AwsError, match="no AWS credentials found"):
        ecr_login(AwsKeys(), "us-east-1")


def test_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)

    with pytest.raises(AwsError, match="cannot reach AWS") as error:
        ecr_login(KEYS, "us-east-1")

    assert endpoint in str(error.value)


def test_service_endpoints_win_over_the_global_one(
    aws: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", aws.endpoint_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", aws.endpoint_url)

    login = ecr_login(KEYS, "us-east-1", role_arn=ROLE_ARN)

    assert login.account == ROLE_ACCOUNT


def test_invalid_region(aws: Moto) -> None:
    with pytest.raises(AwsError, match="'us east 1' is not a valid AWS region"):
        ecr_login(KEYS, "us east 1")


def test_keys_repr_hides_secrets() -> None:
    keys = AwsKeys("AKIDEXAMPLE", "secret-access-key", "session-token")

    text = repr(keys)

    assert "AKIDEXAMPLE" in text
    assert "secret-access-key" not in text
    assert "session-token" not in text
    assert text.count("[secure]") == 2


def test_caller_account(aws: Moto) -> None:
    assert caller_account(KEYS, "eu-west-1") == ACCOUNT
    assert _calls(aws, "GetCallerIdentity") == 1


def test_repository_in_a_named_account(aws: Moto) -> None:
    ensure_repository(KEYS, "us-east-1", "app/web", create=True, account=ACCOUNT)
    ensure_repository(KEYS, "us-east-1", "app/web", create=False, account=ACCOUNT)

    sent = [r.params.get("registryId") for r in aws.requests() if r.service == "ecr"]
    assert sent == [ACCOUNT, ACCOUNT, ACCOUNT]
