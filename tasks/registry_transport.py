"""How freshflow reaches a registry: as the Docker Engine next to it would.

`EngineRegistryRules` are the engine's TLS rules: CAs and client
certificates from `/etc/docker/certs.d/<host>/`, and its insecure
registries (by name or network), which are tried over HTTPS without
verification and then over plain HTTP.  `SocketTrap` sees the sockets of
an upload, keeps their queue of unsent bytes short and lets a watchdog cut
them at the deadline.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import socket
import ssl
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx

CERTS_DIR = Path("/etc/docker/certs.d")
CONNECT_TIMEOUT = 10.0
STALL_TIMEOUT = 60.0  # a request that moves no byte for this long fails
_UNSENT_LOW_WATER = 32 * 1024  # unsent bytes an upload socket may queue
_LINGER_OFF = struct.pack("ii", 1, 0)  # on, 0 s: close() sends a reset


@dataclass(frozen=True)
class EngineRegistryRules:
    """Which registries the engine treats as insecure, and where its CAs are."""

    insecure_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    secure_by_name: Mapping[str, bool] = field(default_factory=dict)
    certs_dir: Path = CERTS_DIR

    @classmethod
    def of(cls, api: docker.APIClient) -> EngineRegistryRules:
        """The rules of the engine `api` talks to."""
        config: dict[str, Any] = api.info().get("RegistryConfig") or {}
        networks = tuple(
            ipaddress.ip_network(cidr, strict=False)
            for cidr in config.get("InsecureRegistryCIDRs") or ()
        )
        secure = {
            name: bool(entry.get("Secure", True))
            for name, entry in (config.get("IndexConfigs") or {}).items()
        }
        return cls(networks, secure)

    def insecure(self, host: str) -> bool:
        """Whether the engine would push to `host` without verifying TLS."""
        if host in self.secure_by_name:
            return not self.secure_by_name[host]
        name = _hostname(host)
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(name, None)}
        except OSError:
            return False
        return any(
            ipaddress.ip_address(str(address).split("%")[0]) in network
            for address in addresses
            for network in self.insecure_networks
        )

    def tls(self, host: str, verify: bool) -> ssl.SSLContext:
        """System CAs plus the engine's `certs.d` CAs and client certificate.

        Without `verify` no CA is loaded at all: loading the system's takes
        about 20 ms, a third of a push whose layers are all there already.
        Contexts are kept for the process while `certs.d/<host>` is unchanged.
        """
        directory = self.certs_dir / host
        try:
            files = tuple(
                (entry.name, entry.stat().st_mtime_ns, entry.stat().st_size)
                for entry in sorted(directory.iterdir())
            )
        except OSError:
            files = ()
        return _context(str(directory), files, verify)


@functools.lru_cache(maxsize=64)
def _context(
    directory: str, files: tuple[tuple[str, int, int], ...], verify: bool
) -> ssl.SSLContext:
    """The TLS context for a `certs.d` directory as `files` describe it."""
    if verify:
        context = ssl.create_default_context()
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    names = {name for name, _, _ in files}
    for name in sorted(names):
        path = Path(directory, name)
        if name.endswith(".crt") and verify:
            context.load_verify_locations(cafile=str(path))
        elif name.endswith(".cert") and name[: -len(".cert")] + ".key" in names:
            context.load_cert_chain(str(path), str(path.with_suffix(".key")))
    return context


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class SocketTrap:
    """Remembers the sockets a client opens, so a watchdog can cut them.

    It also keeps their queue of unsent bytes short, so that a body ended
    early is over at the registry soon after.
    """

    def __init__(self) -> None:
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def __call__(self, event: str, info: Mapping[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError, AttributeError):
                    sock.setsockopt(
                        socket.IPPROTO_TCP,
                        socket.TCP_NOTSENT_LOWAT,
                        _UNSENT_LOW_WATER,
                    )
                with self._lock:
                    self._sockets.append(sock)

    def hook(self, request: httpx.Request) -> None:
        request.extensions["trace"] = self

    def reset(self) -> None:
        """Make closing the sockets reset them, dropping unsent bytes."""
        for sock in self._all():
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_OFF)

    def cut(self) -> None:
        """Reset the sockets and unblock whoever waits on them."""
        self.reset()
        for sock in self._all():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _all(self) -> list[socket.socket]:
        with self._lock:
            return list(self._sockets)


def http_client(
    tls: ssl.SSLContext | bool, trap: SocketTrap | None = None
) -> httpx.Client:
    """A client with freshflow's timeouts; `trap` sees its sockets."""
    return httpx.Client(
        verify=tls,
        timeout=httpx.Timeout(STALL_TIMEOUT, connect=CONNECT_TIMEOUT),
        follow_redirects=True,
        event_hooks={"request": [trap.hook]} if trap else None,
    )
