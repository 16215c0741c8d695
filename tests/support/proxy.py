"""A TCP proxy in front of a real registry, for faults it cannot produce itself.

A real registry is never slow or unreachable on demand, so ``ThrottlingProxy``
sits between the Docker Engine and it: it forwards bytes unchanged (TLS passes
through), paces the upload direction to ``bytes_per_second`` shared by all
connections, and can refuse new connections or cut the open ones.

It listens on 127.0.0.1, which dockerd treats as an insecure registry network,
so ``127.0.0.1:<port>/repo:tag`` pushes over plain HTTP with no engine config.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.2
RECV_SIZE = 16384
RECV_WINDOW = 65536
# Throttled data leaves in slices worth this many seconds, so the pace stays
# smooth instead of bursting one receive buffer at a time.
SLICE_SECONDS = 0.05


class ThrottlingProxy:
    """Forward 127.0.0.1:``port`` to ``target_host``:``target_port``.

    ``bytes_per_second`` limits client-to-server traffic (pushes) across all
    connections; ``None`` means no limit. It may be changed while running.
    At most ``max_connections`` are served at once; others are closed.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        bytes_per_second: float | None = None,
        max_connections: int = 32,
    ) -> None:
        self.target = (target_host, target_port)
        self.bytes_per_second = bytes_per_second
        self.port = 0
        self.bytes_uploaded = 0
        self.connections_accepted = 0
        self._refusing = False
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._listener: socket.socket | None = None
        self._threads: set[threading.Thread] = set()
        self._open: set[socket.socket] = set()
        self._next_send = 0.0

    @property
    def host(self) -> str:
        """The registry host to use in image references: ``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> ThrottlingProxy:
        """Listen on a free loopback port and start forwarding."""
        if self._listener is not None:
            return self
        self._stopping.clear()
        self._listener = socket.create_server(("127.0.0.1", 0))
        # A small receive window keeps the engine from parking megabytes in
        # kernel buffers, so what the proxy forwards tracks what the engine
        # is still sending.
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_WINDOW)
        self.port = self._listener.getsockname()[1]
        self._spawn(self._accept_loop, self._listener)
        return self

    @property
    def open_connections(self) -> int:
        """Client connections being forwarded right now."""
        with self._lock:
            return len(self._open) // 2

    def refuse(self) -> None:
        """Accept new connections and close them at once, until ``forward``."""
        self._refusing = True

    def forward(self) -> None:
        """Forward new connections again after ``refuse``."""
        self._refusing = False

    def drop_connections(self) -> None:
        """Cut every open connection, as a network failure mid-transfer would."""
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        """Close the listener and all connections and wait for the threads."""
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.drop_connections()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> ThrottlingProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, target: Callable[..., None], *args: object) -> threading.Thread:
        thread = threading.Thread(
            target=self._run_tracked, args=(target, *args), daemon=True
        )
        with self._lock:
            self._threads.add(thread)
        thread.start()
        return thread

    def _run_tracked(self, target: Callable[..., None], *args: object) -> None:
        try:
            target(*args)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                if not _wait_readable(listener):
                    continue
                client, _address = listener.accept()
            except (OSError, ValueError):
                return  # closed by stop()
            if self._refusing or not self._slots.acquire(blocking=False):
                client.close()
                continue
            self.connections_accepted += 1
            self._spawn(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError as exc:
            logger.debug("proxy cannot reach %s:%s: %s", *self.target, exc)
            client.close()
            self._slots.release()
            return
        upstream.settimeout(None)
        with self._lock:
            self._open.update((client, upstream))

        try:
            uploads = self._spawn(self._pump, client, upstream, True)
            self._pump(upstream, client, False)
            uploads.join()
        finally:
            with self._lock:
                self._open.difference_update((client, upstream))
            client.close()
            upstream.close()
            self._slots.release()

    def _pump(self, source: socket.socket, sink: socket.socket, upload: bool) -> None:
        # Sockets stay blocking so sendall honours back-pressure; polling
        # with a timeout lets the loop notice stop() between reads.
        while not self._stopping.is_set():
            try:
                if not _wait_readable(source):
                    continue
                data = source.recv(RECV_SIZE)
                if not data:
                    break
                if upload:
                    self._send_paced(sink, data)
                else:
                    sink.sendall(data)
            except (OSError, ValueError):
                break
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def _send_paced(self, sink: socket.socket, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._stopping.is_set():
            rate = self.bytes_per_second
            size = len(view) if rate is None else max(1, int(rate * SLICE_SECONDS))
            chunk, view = view[:size], view[size:]
            if rate is not None and self._stopping.wait(self._delay(len(chunk), rate)):
                return
            sink.sendall(chunk)
            with self._lock:
                self.bytes_uploaded += len(chunk)

    def _delay(self, size: int, rate: float) -> float:
        """Reserve ``size`` bytes of the shared budget; return the wait before sending."""
        with self._lock:
            now = time.monotonic()
            done = max(now, self._next_send) + size / rate
            self._next_send = done
        return done - now


def _wait_readable(sock: socket.socket) -> bool:
    """Wait up to ``POLL_INTERVAL`` for ``sock`` to have data or a connection."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(POLL_INTERVAL * 1000))
