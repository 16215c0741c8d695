"""Shared plumbing for the real services the tests start.

Every service here is a real process on this machine: the Docker Engine, a
Distribution registry per test or session, ``moto_server`` for AWS. This module
holds what they have in common: finding a free port, waiting for a process to
answer, reading the end of its log, and making sure the engine is up.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import docker
from docker.errors import DockerException

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
START_DOCKER = REPO_ROOT / "scripts" / "start-docker"


class ServiceStartError(RuntimeError):
    """A test service did not come up; the message carries its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def machine_ip() -> str | None:
    """Return this machine's outbound IPv4 address, or None if it has only loopback.

    dockerd skips TLS verification for registries that resolve into
    127.0.0.0/8; a registry bound to this address is verified against
    ``/etc/docker/certs.d`` like a remote one.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            # Connecting a UDP socket sends nothing; it only picks a route.
            sock.connect(("198.51.100.1", 9))
        except OSError:
            return None
        address: str = sock.getsockname()[0]
    return None if address.startswith("127.") else address


def log_tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a service log, or a note if absent."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def wait_for(
    ready: Callable[[], bool],
    *,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    interval: float = 0.1,
) -> bool:
    """Poll ``ready`` until it is true, ``timeout`` passes or ``process`` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return True
        if process is not None and process.poll() is not None:
            return False
        time.sleep(interval)
    return ready()


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Terminate ``process`` and reap it, killing it if it will not stop."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ensure_docker() -> docker.DockerClient:
    """Return a client for a Docker Engine that answers, starting one if needed.

    The engine is started by ``scripts/start-docker``, the same script people
    and CI use, so a test run never depends on a daemon started by hand.
    """
    client = _answering_engine()
    if client is not None:
        return client

    logger.info("Docker Engine not answering; running %s", START_DOCKER)
    subprocess.run([str(START_DOCKER)], check=True)
    client = _answering_engine()
    if client is None:
        msg = f"Docker Engine still not answering after {START_DOCKER}"
        raise ServiceStartError(msg)
    return client


def _answering_engine() -> docker.DockerClient | None:
    # from_env() already talks to the engine to negotiate the API version.
    try:
        client = docker.from_env()
        client.ping()
    except DockerException:
        return None
    return client
