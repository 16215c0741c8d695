"""Real CNCF Distribution registries, one process each, for tests.

``start_registry`` writes a Distribution config into a work directory and runs
``docker-registry serve`` on it: plain HTTP or TLS with a throwaway CA, with no
auth, htpasswd (Basic) auth, or Bearer token auth backed by a ``TokenServer``.
The returned ``Registry`` reads what the engine pushed through the registry's
own HTTP API, so tests check the registry's view, not the engine's.

The Docker Engine needs two pieces of machine state for some registries, and
``start_registry`` sets them up and ``Registry.stop`` removes them:

- a TLS registry's CA in ``/etc/docker/certs.d/<host>/ca.crt``;
- an ``/etc/hosts`` line for a registry named by a DNS name, such as the
  ECR stand-in ``<account>.dkr.ecr.<region>.amazonaws.com``. dockerd may
  take up to 5 seconds to notice it, so ``start_registry`` waits until the
  engine itself reaches the registry by that name.

Loopback plain-HTTP registries need neither: dockerd treats 127.0.0.0/8 as an
insecure registry network by default. The same rule means the engine does not
verify TLS for a registry whose name resolves to a loopback address, so the
certs.d CA is installed for fidelity but not enforced by the engine; the
``Registry`` helpers always verify against ``ca_cert``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import secrets
import shutil
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import docker
import httpx
import yaml
from docker.errors import APIError, DockerException

from tests.support.services import (
    ServiceStartError,
    free_port,
    log_tail,
    stop_process,
    wait_for,
)
from tests.support.token_server import TokenServer

HOSTS_FILE = Path("/etc/hosts")
HOSTS_MARKER = "# freshflow-test"
DOCKER_CERTS_DIR = Path("/etc/docker/certs.d")
START_TIMEOUT = 15.0
ENGINE_RESOLVE_TIMEOUT = 10.0

# P-256 keys: made in milliseconds, accepted by Go's TLS and Python's ssl.
NEW_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
CA_EXTENSIONS = (
    *("-addext", "basicConstraints=critical,CA:TRUE"),
    *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
)
SERVER_EXTENSIONS = """\
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName={san}
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
"""

MANIFEST_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass
class Registry:
    """A running Distribution registry and what a test needs to reach it.

    ``username`` and ``password`` are what a client logs in with, for
    htpasswd and token auth alike; ``token_server`` is set for token auth.
    """

    host: str
    url: str
    username: str | None
    password: str | None = field(repr=False)
    ca_cert: Path | None
    root: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    log: Path
    cleanups: list[Callable[[], None]] = field(default_factory=list, repr=False)
    token_server: TokenServer | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        """The TCP port the registry listens on."""
        return httpx.URL(self.url).port or 443

    def reference(self, repository: str, tag: str) -> str:
        """Return the image reference ``<host>/<repository>:<tag>``."""
        return f"{self.host}/{repository}:{tag}"

    def auth_config(self) -> dict[str, str] | None:
        """Return the docker SDK ``auth_config`` for this registry, if it has auth."""
        if self.username is None or self.password is None:
            return None
        return {"username": self.username, "password": self.password}

    def tags(self, repository: str) -> list[str]:
        """Return the repository's tags, or ``[]`` if the registry does not know it."""
        response = self._request("GET", f"/v2/{repository}/tags/list")
        if response.status_code == httpx.codes.NOT_FOUND:
            return []
        response.raise_for_status()
        tags: list[str] | None = response.json().get("tags")
        return sorted(tags or [])

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        """Return the digest the registry serves for ``repository:tag``, if any."""
        response = self._request(
            "HEAD",
            f"/v2/{repository}/manifests/{tag}",
            headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)},
        )
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        response.raise_for_status()
        digest: str | None = response.headers.get("Docker-Content-Digest")
        return digest

    def repositories(self) -> list[str]:
        """Return every repository in the registry's catalog."""
        repositories: list[str] = []
        path: str | None = "/v2/_catalog?n=1000"  # Distribution's page limit
        while path is not None:
            response = self._request("GET", path)
            response.raise_for_status()
            repositories += response.json().get("repositories") or []
            path = response.links.get("next", {}).get("url")
        return sorted(repositories)

    def uploads_in_progress(self, repository: str) -> list[str]:
        """Return the ids of blob uploads the registry still holds open.

        An open upload has its ``startedat`` file (the registry resumes no
        session without it) or received bytes.  Distribution 2.8 leaves an
        empty ``hashstates`` folder behind every cancelled upload, so that
        alone is not an open one.
        """
        uploads = (
            self.root / "docker/registry/v2/repositories" / repository / "_uploads"
        )
        if not uploads.is_dir():
            return []
        return sorted(
            entry.name
            for entry in uploads.iterdir()
            if (entry / "startedat").exists() or (entry / "data").exists()
        )

    def is_up(self) -> bool:
        """Return whether the process runs and answers the ``/v2/`` check."""
        if self.process.poll() is not None:
            return False
        try:
            response = self._request("GET", "/v2/", authenticate=False)
        except httpx.HTTPError:
            return False
        return response.status_code in (httpx.codes.OK, httpx.codes.UNAUTHORIZED)

    def stop(self) -> None:
        """Stop the process and undo the machine state set up for it."""
        stop_process(self.process)
        while self.cleanups:
            self.cleanups.pop()()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _request(
        self,
        method: str,
        path: str,
        *,
        authenticate: bool = True,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send a request: Basic auth up front, or a token for a Bearer challenge."""
        verify: ssl.SSLContext | bool = True
        if self.ca_cert is not None:
            verify = ssl.create_default_context(cafile=str(self.ca_cert))
        # A token registry gets no password; only its token server does.
        basic = self._basic() if authenticate and self.token_server is None else None
        with httpx.Client(base_url=self.url, verify=verify, timeout=10) as client:
            response = client.request(method, path, headers=headers, auth=basic)
            challenge = response.headers.get("WWW-Authenticate", "")
            scheme, _, params = challenge.partition(" ")
            if (
                not authenticate
                or response.status_code != httpx.codes.UNAUTHORIZED
                or scheme.lower() != "bearer"
            ):
                return response
            token = self._token(client, dict(_CHALLENGE_PARAM.findall(params)))
            sent = {**(headers or {}), "Authorization": f"Bearer {token}"}
            return client.request(method, path, headers=sent)

    def _token(self, client: httpx.Client, challenge: dict[str, str]) -> str:
        """Fetch a token from the challenge's realm, as ``docker push`` does."""
        params = {k: v for k, v in challenge.items() if k in ("service", "scope")}
        response = client.get(challenge["realm"], params=params, auth=self._basic())
        response.raise_for_status()
        token: str = response.json()["token"]
        return token

    def _basic(self) -> httpx.BasicAuth | None:
        if self.username is None or self.password is None:
            return None
        return httpx.BasicAuth(self.username, self.password)


def start_registry(
    workdir: Path,
    *,
    tls: bool = False,
    auth: tuple[str, str] | None = None,
    token_auth: tuple[str, str] | None = None,
    hostname: str = "127.0.0.1",
    bind_address: str = "127.0.0.1",
    port: int | None = None,
) -> Registry:
    """Start a Distribution registry storing its data under ``workdir``.

    ``hostname`` is the name image references use; a DNS name gets an
    ``/etc/hosts`` line pointing at ``bind_address``. ``auth`` is a
    ``(username, password)`` pair for htpasswd auth; ``token_auth`` one for
    Bearer token auth from a ``TokenServer`` on 127.0.0.1, which the engine
    reaches too and which stops with the registry. A TLS registry's server
    certificate is signed by a fresh CA, installed for the Docker Engine.
    Raises ``ServiceStartError`` with the log tail if it does not answer
    within 15 seconds.
    """
    if auth is not None and token_auth is not None:
        msg = "start_registry takes auth (htpasswd) or token_auth, not both"
        raise ValueError(msg)
    workdir.mkdir(parents=True, exist_ok=True)
    port = port if port is not None else free_port(bind_address)
    host = hostname if port == 443 else f"{hostname}:{port}"
    root = workdir / "storage"
    log = workdir / "registry.log"

    http: dict[str, object] = {"addr": f"{bind_address}:{port}"}
    http["secret"] = secrets.token_hex(16)
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {
            "filesystem": {"rootdirectory": str(root)},
            "delete": {"enabled": True},
        },
        "http": http,
    }
    if auth is not None:
        htpasswd = _write_htpasswd(workdir / "htpasswd", *auth)
        config["auth"] = {"htpasswd": {"realm": "freshflow-test", "path": htpasswd}}
    ca_cert = None
    if tls:
        ca_cert, cert, key = _make_certificates(workdir / "tls", hostname)
        http["tls"] = {"certificate": str(cert), "key": str(key)}
    command = [_registry_executable(), "serve", str(workdir / "config.yml")]
    # Started last: nothing that can fail before the registry owns it.
    token_server = None
    if token_auth is not None:
        token_server = TokenServer(workdir / "token", *token_auth).start()
        config["auth"] = {"token": token_server.token_config()}
    (workdir / "config.yml").write_text(yaml.safe_dump(config))

    credentials = auth or token_auth
    registry = Registry(
        host=host,
        url=f"{'https' if tls else 'http'}://{host}",
        username=credentials[0] if credentials else None,
        password=credentials[1] if credentials else None,
        ca_cert=ca_cert,
        root=root,
        process=_spawn(command, log),
        log=log,
        token_server=token_server,
    )
    if token_server is not None:
        registry.cleanups.append(token_server.stop)
    try:
        named = _prepare_machine(registry, hostname, bind_address)
        if not wait_for(
            registry.is_up, timeout=START_TIMEOUT, process=registry.process
        ):
            msg = f"registry {host!r} did not answer /v2/; log {log}:\n{log_tail(log)}"
            raise ServiceStartError(msg)
        if named:
            _wait_for_engine_to_resolve(registry)
    except BaseException:
        registry.stop()
        raise
    return registry


def add_hosts_entry(hostname: str, ip: str) -> None:
    """Map ``hostname`` to ``ip`` in ``/etc/hosts``, replacing an earlier mapping."""
    lines = [line for line in _hosts_lines() if not _is_ours(line, hostname)]
    lines.append(f"{ip}\t{hostname}\t{HOSTS_MARKER}")
    _write_hosts(lines)


def remove_hosts_entry(hostname: str) -> None:
    """Remove the ``/etc/hosts`` line ``add_hosts_entry`` wrote for ``hostname``."""
    lines = _hosts_lines()
    kept = [line for line in lines if not _is_ours(line, hostname)]
    if kept != lines:
        _write_hosts(kept)


def _prepare_machine(registry: Registry, hostname: str, bind_address: str) -> bool:
    """Install the CA and hosts line; return whether a hosts line was added."""
    if registry.ca_cert is not None:
        engine_ca = DOCKER_CERTS_DIR / registry.host / "ca.crt"
        engine_ca.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(registry.ca_cert, engine_ca)
        registry.cleanups.append(lambda: _remove_engine_ca(engine_ca))
    if _is_ip(hostname) or hostname == "localhost":
        return False
    ip = "127.0.0.1" if bind_address in ("", "0.0.0.0") else bind_address
    add_hosts_entry(hostname, ip)
    registry.cleanups.append(lambda: remove_hosts_entry(hostname))
    return True


def _wait_for_engine_to_resolve(registry: Registry) -> None:
    """Wait until dockerd sees a new ``/etc/hosts`` line for the registry.

    Go's resolver in dockerd trusts its copy of ``/etc/hosts`` for 5 seconds
    after each lookup, so a push right after ``add_hosts_entry`` can still
    fail with "no such host". Asking the engine to inspect a manifest makes
    it resolve and dial the name without storing any credentials.
    """
    try:
        client = docker.from_env()
    except DockerException:
        return  # no engine, nothing that could resolve stale names
    probe = registry.reference("freshflow-test/resolve-probe", "probe")

    def engine_reaches_registry() -> bool:
        try:
            client.api.inspect_distribution(probe)
        except APIError as exc:
            return "dial tcp" not in str(exc.explanation)
        return True

    try:
        reached = wait_for(engine_reaches_registry, timeout=ENGINE_RESOLVE_TIMEOUT)
    finally:
        client.close()
    if not reached:
        msg = (
            f"the Docker Engine cannot reach registry {registry.host!r} within "
            f"{ENGINE_RESOLVE_TIMEOUT:.0f} s; check /etc/hosts and dockerd's log"
        )
        raise ServiceStartError(msg)


def _remove_engine_ca(engine_ca: Path) -> None:
    engine_ca.unlink(missing_ok=True)
    # Leave the directory if someone else put certificates in it too.
    with contextlib.suppress(OSError):
        engine_ca.parent.rmdir()


def _registry_executable() -> str:
    executable = shutil.which("docker-registry")
    if executable is None:
        msg = "docker-registry not found; run scripts/bootstrap to install it"
        raise ServiceStartError(msg)
    return executable


def _spawn(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as log_file:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file
        )


def _write_htpasswd(path: Path, username: str, password: str) -> str:
    # -i reads the password from stdin, keeping it out of the process list.
    line = _run(["htpasswd", "-Bin", username], stdin=password.encode())
    path.write_bytes(line)
    return str(path)


def _make_certificates(directory: Path, hostname: str) -> tuple[Path, Path, Path]:
    """Create a CA and a server certificate for ``hostname`` signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.crt"
    key, csr, cert = (directory / f"server.{ext}" for ext in ("key", "csr", "crt"))
    extfile = directory / "server.ext"
    san = f"IP:{hostname}" if _is_ip(hostname) else f"DNS:{hostname}"
    extfile.write_text(SERVER_EXTENSIONS.format(san=san))

    ca = ["-x509", "-days", "7", "-subj", "/CN=freshflow test CA", *CA_EXTENSIONS]
    _openssl("req", *NEW_KEY, *ca, "-keyout", ca_key, "-out", ca_cert)
    _openssl("req", *NEW_KEY, "-subj", f"/CN={hostname}", "-keyout", key, "-out", csr)
    serial = str(secrets.randbits(63))
    signing = ["-CA", ca_cert, "-CAkey", ca_key, "-set_serial", serial, "-days", "7"]
    _openssl("x509", "-req", *signing, "-extfile", extfile, "-in", csr, "-out", cert)
    return ca_cert, cert, key


def _openssl(*arguments: object) -> bytes:
    return _run(["openssl", *map(str, arguments)])


def _run(command: list[str], stdin: bytes | None = None) -> bytes:
    result = subprocess.run(command, input=stdin, capture_output=True, check=False)
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        msg = f"{command[0]} failed with exit code {result.returncode}: {stderr}"
        raise ServiceStartError(msg)
    return result.stdout


def _is_ip(hostname: str) -> bool:
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True


def _hosts_lines() -> list[str]:
    return HOSTS_FILE.read_text().splitlines()


def _is_ours(line: str, hostname: str) -> bool:
    fields = line.split()
    return line.endswith(HOSTS_MARKER) and len(fields) > 1 and fields[1] == hostname


def _write_hosts(lines: list[str]) -> None:
    # Rewritten in place: /etc/hosts is often a bind mount that cannot be
    # replaced by a rename.
    HOSTS_FILE.write_text("\n".join(lines) + "\n")
