"""Amazon ECR: log in to a registry and make sure a repository exists, with boto3.

A login is the registry password from `ecr:GetAuthorizationToken`, optionally
after assuming an IAM role with `sts:AssumeRole`.  Logins and assumed-role
credentials are cached in memory until five minutes before they expire.  boto3
finds the endpoints itself (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_ECR`,
`AWS_ENDPOINT_URL_STS`, profiles), so nothing here names one.  Every AWS
failure leaves this module as an `AwsError` that says what to do next; every
secret obtained is registered for log redaction first.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    InvalidRegionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from flows.errors import AwsError
from flows.redaction import redact, register
from tasks.engine import RegistryAuth

log = logging.getLogger(__name__)

# boto3-stubs is installed without its ECR and STS service packages, so the
# clients are typed as Any.
Client = Any
K = TypeVar("K")
V = TypeVar("V")

_CONFIG = Config(
    connect_timeout=10,
    read_timeout=30,
    retries={"max_attempts": 3, "mode": "standard"},
)
_MARGIN = timedelta(minutes=5)
_DURATION_RANGE = range(900, 3601)
_DENIED = {"AccessDenied", "AccessDeniedException"}
_BAD_KEYS = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
}
_XML_CODE = re.compile(r"<Code>([^<]+)</Code>")
_REGISTRY_ID = re.compile(r"registry with id '(\d+)'")


@dataclass(frozen=True)
class AwsKeys:
    """Static AWS keys, or all None to use the worker's standard AWS chain."""

    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None

    def __repr__(self) -> str:
        secret = "'[secure]'" if self.secret_access_key else "None"
        token = "'[secure]'" if self.session_token else "None"
        return f"AwsKeys(access_key_id={self.access_key_id!r}, secret_access_key={secret}, session_token={token})"


@dataclass(frozen=True)
class EcrLogin:
    """A registry login for one ECR registry, valid until `expires_at` (UTC)."""

    host: str
    account: str
    region: str
    auth: RegistryAuth
    expires_at: datetime


@dataclass(frozen=True)
class _Scope:
    """What one public call works on; error messages are phrased from it."""

    keys: AwsKeys
    region: str
    role_arn: str | None
    session_name: str
    duration_seconds: int


_lock = threading.Lock()
_logins: dict[tuple[str, str, str | None, str], tuple[EcrLogin, datetime]] = {}
_roles: dict[tuple[str, str, str, int], tuple[AwsKeys, datetime]] = {}


def ecr_login(
    keys: AwsKeys,
    region: str,
    *,
    role_arn: str | None = None,
    session_name: str = "default-session-name",
    duration_seconds: int = 3600,
    refresh: bool = False,
) -> EcrLogin:
    """Log in to the ECR registry of `region`, from the cache unless `refresh`.

    With `role_arn` the role is assumed first.  Use `refresh=True` after the
    registry refused a cached login.
    """
    scope = _Scope(keys, region, role_arn, session_name, duration_seconds)
    cache_key = (keys.access_key_id or "chain", region, role_arn, session_name)
    cached = None if refresh else _lookup(_logins, cache_key)
    if cached is not None:
        log.debug("Using the cached ECR login for %s", cached[0].host)
        return cached[0]

    session, keys_expire = _session(scope, refresh=refresh)
    with _translated("GetAuthorizationToken", scope):
        answer = _client(session, "ecr").get_authorization_token()
    login = _parse_authorization(answer["authorizationData"][0], region)

    ends = min(login.expires_at, keys_expire or login.expires_at)
    with _lock:
        _logins[cache_key] = (login, ends)
    log.debug("Logged in to ECR %s until %s", login.host, login.expires_at)
    return login


def ensure_repository(
    keys: AwsKeys,
    region: str,
    repository: str,
    *,
    create: bool,
    account: str | None = None,
    role_arn: str | None = None,
    session_name: str = "default-session-name",
    duration_seconds: int = 3600,
) -> None:
    """Make sure ECR `repository` exists in `region`, creating it if `create`.

    `account` names the registry when it is not the caller's own.
    """
    scope = _Scope(keys, region, role_arn, session_name, duration_seconds)
    session, _ = _session(scope, refresh=False)
    registry = {"registryId": account} if account else {}
    with _translated("DescribeRepositories", scope):
        ecr = _client(session, "ecr")
        try:
            ecr.describe_repositories(repositoryNames=[repository], **registry)
        except ClientError as exc:
            if _error_code(exc) != "RepositoryNotFoundException":
                raise
            match = _REGISTRY_ID.search(str(exc.response["Error"].get("Message")))
            owner = match.group(1) if match else account
            where = f"account {owner}" if owner else "the caller's account"
        else:
            log.debug("ECR repository %r exists in %s", repository, region)
            return

    if not create:
        msg = f"ECR repository {repository!r} does not exist in {where}, region {region!r}; create it (aws ecr create-repository --repository-name {repository} --region {region}), or push through an ECR integration with `create_repositories` on (freshflow registry add-ecr NAME ... --create-repositories) to have freshflow create it"
        raise AwsError(msg)

    exists = ecr.exceptions.RepositoryAlreadyExistsException  # a race: fine
    with _translated("CreateRepository", scope), contextlib.suppress(exists):
        ecr.create_repository(repositoryName=repository, **registry)
    log.info("Created ECR repository %r in %s, region %s", repository, where, region)


def caller_account(keys: AwsKeys, region: str) -> str:
    """The 12-digit account of `keys` (or of the worker's chain), from STS."""
    scope = _Scope(keys, region, None, "default-session-name", 3600)
    session, _ = _session(scope, refresh=False)
    with _translated("GetCallerIdentity", scope):
        answer = _client(session, "sts").get_caller_identity()
    return str(answer["Account"])


def forget_logins() -> None:
    """Drop every cached login and assumed-role credential."""
    with _lock:
        _logins.clear()
        _roles.clear()


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _lookup(cache: dict[K, tuple[V, datetime]], key: K) -> tuple[V, datetime] | None:
    """The cached value and when it ends, unless it ends within 5 minutes."""
    with _lock:
        entry = cache.get(key)
    if entry is None or _utcnow() >= entry[1] - _MARGIN:
        return None
    return entry


def _session(
    scope: _Scope, *, refresh: bool
) -> tuple[boto3.session.Session, datetime | None]:
    """A session in the scope's region, as the assumed role when it names one."""
    keys, expires = scope.keys, None
    register(keys.secret_access_key)
    register(keys.session_token)
    if scope.role_arn is not None:
        keys, expires = _assume_role(scope, scope.role_arn, refresh=refresh)
    return _boto_session(keys, scope.region), expires


def _boto_session(keys: AwsKeys, region: str) -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
        aws_session_token=keys.session_token,
        region_name=region,
    )


def _client(session: boto3.session.Session, service: Literal["ecr", "sts"]) -> Client:
    return session.client(service, config=_CONFIG)


def _assume_role(
    scope: _Scope, role_arn: str, *, refresh: bool
) -> tuple[AwsKeys, datetime]:
    """Temporary keys for `role_arn`, cached until 5 minutes before they expire."""
    duration = scope.duration_seconds
    if duration not in _DURATION_RANGE:
        msg = f"aws_duration_seconds {duration} is out of range for role {role_arn!r}; it must be 900-3600 seconds"
        raise AwsError(msg)

    key = (scope.keys.access_key_id or "chain", role_arn, scope.session_name, duration)
    cached = None if refresh else _lookup(_roles, key)
    if cached is not None:
        return cached

    with _translated("AssumeRole", scope):
        sts = _client(_boto_session(scope.keys, scope.region), "sts")
        answer = sts.assume_role(
            RoleArn=role_arn,
            RoleSessionName=scope.session_name,
            DurationSeconds=duration,
        )
    credentials = answer["Credentials"]
    register(credentials["SecretAccessKey"])
    register(credentials["SessionToken"])
    keys = AwsKeys(
        credentials["AccessKeyId"],
        credentials["SecretAccessKey"],
        credentials["SessionToken"],
    )
    expires: datetime = credentials["Expiration"].astimezone(UTC)

    with _lock:
        _roles[key] = (keys, expires)
    log.debug("Assumed role %s as session %r", role_arn, scope.session_name)
    return keys, expires


def _parse_authorization(data: dict[str, Any], region: str) -> EcrLogin:
    """An `EcrLogin` from one `authorizationData` entry of GetAuthorizationToken."""
    token: str = data["authorizationToken"]
    register(token)
    try:
        decoded = base64.b64decode(token, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    username, _, password = decoded.partition(":")
    if not username or not password:
        msg = f"ECR in {region!r} returned an authorization token that is not base64 of 'user:password'; retry, and report it if it persists"
        raise AwsError(msg)
    register(password)

    host = str(data["proxyEndpoint"]).removeprefix("https://").rstrip("/")
    expires_at: datetime = data["expiresAt"].astimezone(UTC)
    auth = RegistryAuth(registry=host, username=username, password=password)
    return EcrLogin(host, host.split(".", 1)[0], region, auth, expires_at)


def _error_code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    if code.isdigit():
        # moto answers refused JSON-protocol requests (ECR) with a query-protocol
        # XML body, which botocore leaves whole in the message.
        match = _XML_CODE.search(str(error.get("Message", "")))
        if match:
            return match.group(1)
    return code


@contextlib.contextmanager
def _translated(operation: str, scope: _Scope) -> Iterator[None]:
    """Turn boto3 failures inside the block into an `AwsError` for `operation`."""
    try:
        yield
    except ClientError as exc:
        raise AwsError(_client_error_message(exc, operation, scope)) from None
    except BotoCoreError as exc:
        raise AwsError(_botocore_error_message(exc, operation, scope)) from None


def _client_error_message(exc: ClientError, operation: str, scope: _Scope) -> str:
    code = _error_code(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    service = "sts" if operation in ("AssumeRole", "GetCallerIdentity") else "ecr"
    who = f"role {scope.role_arn!r}" if scope.role_arn else "the integration's keys"
    if not scope.role_arn and not scope.keys.access_key_id:
        who = "the worker's AWS chain"
    if code in _BAD_KEYS:
        return f"AWS rejected the credentials for {service}:{operation} in {scope.region!r} ({code}): the keys are invalid or expired; check the access key ID and secret access key of the integration (or the worker's AWS chain)"
    if (code in _DENIED or status == 403) and operation == "AssumeRole":
        return f"AWS denied sts:AssumeRole on role {scope.role_arn!r}: the caller must be allowed sts:AssumeRole on that role, and the role's trust policy must allow the caller"
    if code in _DENIED or status == 403:
        return f"AWS denied {service}:{operation} in {scope.region!r}: the identity used ({who}) needs the {service}:{operation} permission; add it to its IAM policy"
    if code == "ValidationError" and "uration" in str(exc):
        return f"STS refused aws_duration_seconds {scope.duration_seconds} for role {scope.role_arn!r}: it must be 900-3600 seconds and within the role's maximum session duration"
    message = redact(str(exc.response.get("Error", {}).get("Message", "")))
    return f"AWS refused {service}:{operation} in {scope.region!r} ({code}): {message}"


def _botocore_error_message(exc: BotoCoreError, operation: str, scope: _Scope) -> str:
    endpoint = exc.kwargs.get("endpoint_url")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return f"no AWS credentials found for {operation}: set the access key ID and secret access key on the ECR integration, or configure the worker's AWS chain (environment, profile or instance role)"
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return f"cannot reach AWS at {endpoint!r} for {operation}: check AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_ECR / AWS_ENDPOINT_URL_STS) and the worker's network"
    if isinstance(exc, ReadTimeoutError):
        return f"AWS at {endpoint!r} did not answer {operation} within 30 seconds; retry the build, and check the network if it persists"
    if isinstance(exc, InvalidRegionError):
        return f"region {scope.region!r} is not a valid AWS region name; use a name like 'us-east-1'"
    if isinstance(exc, ParamValidationError):
        report = " ".join(str(exc).split())
        return f"invalid {operation} request: {report}"
    return f"{operation} failed in {scope.region!r}: {redact(str(exc))}"
