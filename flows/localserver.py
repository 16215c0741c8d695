"""One local Prefect server, kept running in the background for freshflow.

Without `PREFECT_API_URL`, every Prefect process starts a temporary server of
its own and waits for it (5 to 30 s on small machines).  `freshflow server
start` runs `prefect server start` once, on the SQLite database in
`PREFECT_HOME` that the temporary servers use too (so integrations and run
history carry over), and records it in `PREFECT_HOME/freshflow-server.json`.
While it answers, `freshflow` commands use it (`use_running_server`); `prefect`
commands need the `PREFECT_API_URL` that `start` prints.  This module runs
before Prefect is imported, so it must not import Prefect itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from flows.errors import PlatformError

STATE_NAME = "freshflow-server.json"
LOG_NAME = "freshflow-server.log"
HOST = "127.0.0.1"
DEFAULT_PORT = 4201
START_TIMEOUT = 180.0


@dataclass(frozen=True)
class LocalServer:
    """A background `prefect server start` this module started."""

    pid: int
    port: int
    home: str

    @property
    def url(self) -> str:
        """The API URL clients use (`PREFECT_API_URL`)."""
        return f"http://{HOST}:{self.port}/api"

    @property
    def log(self) -> Path:
        return Path(self.home) / LOG_NAME

    def alive(self) -> bool:
        """Whether the server process still exists."""
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return True

    def answers(self, timeout: float = 1.0) -> bool:
        """Whether the process lives and its API reports healthy."""
        if not self.alive():
            return False
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=timeout) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError):
            return False


def prefect_home() -> Path:
    """`PREFECT_HOME` as Prefect resolves it, without importing Prefect."""
    return Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()


def _state_file() -> Path:
    return prefect_home() / STATE_NAME


def running() -> LocalServer | None:
    """The recorded server, or None when none was started or it has exited."""
    try:
        server = LocalServer(**json.loads(_state_file().read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return server if server.alive() else None


def start(port: int = DEFAULT_PORT, timeout: float = START_TIMEOUT) -> LocalServer:
    """Start the background server unless one answers already; wait for it."""
    server = running()
    if server is not None and server.answers():
        return server
    if server is not None:
        stop()
    _check_port_free(port)
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    command = [sys.executable, "-m", "prefect", "server", "start"]
    command += ["--host", HOST, "--port", str(port)]
    with (home / LOG_NAME).open("ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,  # survives the command; stop() ends its group
        )
    server = LocalServer(process.pid, port, str(home))
    _state_file().write_text(json.dumps(asdict(server)))
    _wait_until_healthy(server, process, timeout)
    return server


def _check_port_free(port: int) -> None:
    with socket.socket() as sock:
        if sock.connect_ex((HOST, port)) == 0:
            msg = f"port {port} on {HOST} is in use; pick another with --port"
            raise PlatformError(msg)


def _wait_until_healthy(
    server: LocalServer, process: subprocess.Popen[bytes], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not server.answers():
        if process.poll() is not None or time.monotonic() > deadline:
            stop()
            what = "exited" if process.poll() is not None else "did not answer"
            msg = f"the local Prefect server {what} during start-up; see {server.log}"
            raise PlatformError(msg)
        time.sleep(0.2)


def stop(timeout: float = 15.0) -> LocalServer | None:
    """Stop the background server (and its children); None if none ran."""
    server = running()
    _state_file().unlink(missing_ok=True)
    if server is None:
        return None
    with contextlib.suppress(OSError):
        os.killpg(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive_not_reaped(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    if server.alive():
        with contextlib.suppress(OSError):
            os.killpg(server.pid, signal.SIGKILL)
    return server


def _alive_not_reaped(server: LocalServer) -> bool:
    # Started by this very process (tests, a long-lived caller), the server
    # stays a zombie until reaped; anyone else's child is init's to reap.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(server.pid, os.WNOHANG)
    return server.alive()


def _profile_api_url() -> str | None:
    """`PREFECT_API_URL` of the active Prefect profile, if one sets it."""
    path = Path(
        os.environ.get("PREFECT_PROFILES_PATH") or prefect_home() / "profiles.toml"
    )
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active")
    settings = profiles.get("profiles", {}).get(active, {})
    url = settings.get("PREFECT_API_URL") if isinstance(settings, dict) else None
    return str(url) if url else None


def use_running_server() -> str | None:
    """Point this process at the background server when nothing else is set.

    Call before Prefect is imported: its settings are read once, on import.
    Returns the API URL it set, or None.
    """
    if os.environ.get("PREFECT_API_URL") or _profile_api_url():
        return None
    server = running()
    if server is None or not server.answers(timeout=2.0):
        return None
    os.environ["PREFECT_API_URL"] = server.url
    return server.url
