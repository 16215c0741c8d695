"""AWS on loopback for tests: ``moto_server`` plus a stand-in ECR registry.

``start_moto`` runs a real ``moto_server`` process. Code under test reaches it
through boto3's ``endpoint_url``, or with no code change through the
``AWS_ENDPOINT_URL`` variable that ``Moto.env`` returns.

What moto 5 answers, checked against moto 5.2 with boto3:

- ``ecr.get_authorization_token()`` returns one ``authorizationData`` entry
  per registry ID (default: the caller's account). ``authorizationToken`` is
  base64 of ``AWS:<account>-auth-token``, so the registry login is user
  ``AWS`` with password ``<account>-auth-token`` (``moto_ecr_password``);
  ``proxyEndpoint`` is ``https://<account>.dkr.ecr.<region>.amazonaws.com``
  with the client's region, and ``expiresAt`` is a fixed 2015-01-01.
- The caller's account is 123456789012 for plain keys. With credentials
  from ``sts.assume_role`` it is the account in the role ARN, so ECR then
  answers for that account.
- ``sts.assume_role`` returns ``AssumedRoleUser.Arn`` =
  ``arn:aws:sts::<account>:assumed-role/<role name>/<RoleSessionName>`` and
  ``Credentials.Expiration`` = now + ``DurationSeconds``. Moto's
  ``/moto-api/data.json`` lists assumed roles with ``session_name`` but
  drops the expiration, so it cannot show the duration.

To see what reached AWS, the server runs with moto's request recorder on
(``MOTO_ENABLE_RECORDING``), writing every request to ``moto-recording.jsonl``
in its work directory. ``Moto.requests`` parses that file and
``Moto.assume_role_calls`` gives each AssumeRole's ``RoleSessionName`` and
``DurationSeconds`` exactly as sent; ``access_key_id`` on a recorded request
tells which credentials signed it (an ``ASIA...`` key from AssumeRole, or
the base key). The recording holds request headers, which with moto's fake
credentials is harmless.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.support.registry import Registry, start_registry
from tests.support.services import (
    ServiceStartError,
    free_port,
    log_tail,
    stop_process,
    wait_for,
)

START_TIMEOUT = 30.0
FAKE_KEY = "testing"


@dataclass(frozen=True)
class RecordedRequest:
    """One AWS API call as moto received it."""

    service: str
    action: str
    region: str | None
    access_key_id: str | None
    params: dict[str, str]


@dataclass(frozen=True)
class AssumeRoleCall:
    """What one ``sts:AssumeRole`` call sent."""

    role_arn: str
    session_name: str
    duration_seconds: int | None
    external_id: str | None
    access_key_id: str | None


@dataclass
class Moto:
    """A running ``moto_server`` with its request recording."""

    endpoint_url: str
    port: int
    process: subprocess.Popen[bytes] = field(repr=False)
    log: Path
    recording: Path

    def env(self, region: str = "us-east-1") -> dict[str, str]:
        """Return environment variables that point boto3 at this server.

        Set them all, and unset ``AWS_PROFILE`` and ``AWS_SESSION_TOKEN``,
        which would otherwise win over the fake keys.
        """
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": FAKE_KEY,
            "AWS_SECRET_ACCESS_KEY": FAKE_KEY,
            "AWS_DEFAULT_REGION": region,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def requests(self) -> list[RecordedRequest]:
        """Return the AWS API calls received since start or the last ``reset``."""
        try:
            lines = self.recording.read_text().splitlines()
        except FileNotFoundError:
            return []
        entries = (_parse_entry(json.loads(line)) for line in lines if line)
        return [entry for entry in entries if entry is not None]

    def assume_role_calls(self) -> list[AssumeRoleCall]:
        """Return every ``sts:AssumeRole`` call with its parameters as sent."""
        return [
            AssumeRoleCall(
                role_arn=call.params["RoleArn"],
                session_name=call.params["RoleSessionName"],
                duration_seconds=_optional_int(call.params.get("DurationSeconds")),
                external_id=call.params.get("ExternalId"),
                access_key_id=call.access_key_id,
            )
            for call in self.requests()
            if call.service == "sts" and call.action == "AssumeRole"
        ]

    def reset(self) -> None:
        """Forget all AWS state and recorded requests, as after a fresh start."""
        with httpx.Client(base_url=self.endpoint_url, timeout=10) as client:
            client.post("/moto-api/reset").raise_for_status()
            client.post("/moto-api/recorder/reset-recording").raise_for_status()

    def is_up(self) -> bool:
        """Return whether the process runs and answers HTTP."""
        if self.process.poll() is not None:
            return False
        try:
            response = httpx.get(f"{self.endpoint_url}/moto-api/", timeout=5)
        except httpx.HTTPError:
            return False
        return response.status_code == httpx.codes.OK

    def stop(self) -> None:
        """Stop the server process."""
        stop_process(self.process)

    def __enter__(self) -> Moto:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_moto(workdir: Path) -> Moto:
    """Start ``moto_server`` on a free loopback port, recording requests.

    Raises ``ServiceStartError`` with the log tail if it does not answer
    within 30 seconds.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "moto.log"
    recording = workdir / "moto-recording.jsonl"
    env = os.environ | {
        "MOTO_ENABLE_RECORDING": "1",
        "MOTO_RECORDER_FILEPATH": str(recording),
    }

    command = [_moto_executable(), "-H", "127.0.0.1", "-p", str(port)]
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=env
        )
    moto = Moto(f"http://127.0.0.1:{port}", port, process, log, recording)

    if not wait_for(moto.is_up, timeout=START_TIMEOUT, process=process):
        moto.stop()
        msg = f"moto_server did not answer on port {port}; log {log}:\n{log_tail(log)}"
        raise ServiceStartError(msg)
    return moto


def ecr_hostname(account: str, region: str) -> str:
    """Return the ECR registry host of ``account`` in ``region``."""
    return f"{account}.dkr.ecr.{region}.amazonaws.com"


def moto_ecr_password(account: str) -> str:
    """Return the registry password inside moto's ECR authorization token."""
    return f"{account}-auth-token"


def decode_ecr_token(authorization_token: str) -> tuple[str, str]:
    """Split a base64 ECR ``authorizationToken`` into ``(username, password)``."""
    try:
        decoded = base64.b64decode(authorization_token, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        msg = f"not a base64 ECR token: {authorization_token[:8]!r}..."
        raise ValueError(msg) from exc
    username, _, password = decoded.partition(":")
    return username, password


def start_ecr_registry(
    workdir: Path, account: str, region: str, ip: str, token_password: str
) -> Registry:
    """Start a TLS registry that answers as ECR for ``account`` in ``region``.

    It listens on ``ip``:443 (any 127.0.0.x works) and accepts user ``AWS``
    with ``token_password``. ``/etc/hosts`` maps the ECR host to ``ip`` and
    the registry's CA is installed for the engine until ``stop()``.
    """
    return start_registry(
        workdir,
        tls=True,
        auth=("AWS", token_password),
        hostname=ecr_hostname(account, region),
        bind_address=ip,
        port=443,
    )


def _moto_executable() -> str:
    beside_python = Path(sys.executable).with_name("moto_server")
    if beside_python.exists():
        return str(beside_python)
    executable = shutil.which("moto_server")
    if executable is None:
        msg = "moto_server not found; run scripts/bootstrap to install moto[server]"
        raise ServiceStartError(msg)
    return executable


def _parse_entry(entry: dict[str, object]) -> RecordedRequest | None:
    url = str(entry.get("url", ""))
    if urlsplit(url).path.startswith("/moto-api/"):
        return None
    raw_headers = entry.get("headers")
    headers: dict[str, str] = raw_headers if isinstance(raw_headers, dict) else {}
    body = str(entry.get("body") or "")
    if entry.get("body_encoded"):
        body = base64.b64decode(body).decode(errors="replace")

    # Query-protocol services (STS) send a form; JSON ones (ECR) name the
    # action in X-Amz-Target.
    target = headers.get("X-Amz-Target")
    if target:
        action, params = target.rsplit(".", 1)[-1], _json_params(body)
    else:
        params = dict(parse_qsl(body))
        action = params.pop("Action", "")
    key, region, service = _credential_scope(headers.get("Authorization", ""))
    return RecordedRequest(service, action, region, key, params)


def _json_params(body: str) -> dict[str, str]:
    try:
        document = json.loads(body or "{}")
    except ValueError:
        return {}
    if not isinstance(document, dict):
        return {}
    return {
        name: value if isinstance(value, str) else json.dumps(value)
        for name, value in document.items()
    }


def _credential_scope(authorization: str) -> tuple[str | None, str | None, str]:
    """Split SigV4 ``Credential=KEY/date/region/service/aws4_request``."""
    for part in authorization.replace(",", " ").split():
        if part.startswith("Credential="):
            scope = part.removeprefix("Credential=").split("/")
            if len(scope) == 5:
                return scope[0], scope[2], scope[3]
    return None, None, ""


def _optional_int(value: str | None) -> int | None:
    return int(value) if value is not None else None
