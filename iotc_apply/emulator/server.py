"""Run the emulator app on a real loopback socket, in a background thread.

Used by `iotc emulator serve`, by `--emulator` (an in-process server whose state lives in a
SQLite file) and by the tests: clients always talk real HTTP to 127.0.0.1, never to the WSGI
app directly. Imports nothing from the rest of iotc_apply.

The server is cheroot (CherryPy's production WSGI server). `benchmarks/emulator_bench.py`
measured it and waitress against werkzeug's development server: both cut the server's CPU
per `POST /Device` by 20-30% and are within noise of each other (cheroot ahead in one run,
waitress in the next); `GET /Device` pages cost the rules, not the server. cheroot is chosen
because it hands each request its connection, which the `drop` and `timeout` faults need
(waitress writes from its own I/O thread, so a worker cannot close the socket under a
request without racing it).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.workers.threadpool import WorkerThread
from flask import Flask

from .app import DROP_CONNECTION, EXTENSION, create_app

# Worker threads at start, and at most. Requests beyond the workers would wait in the server's
# queue and turn the latency knob into a queueing delay, and a client's pool follows its
# --parallelism (100 at once is ordinary against a real account), so the pool grows by the
# connections that find no free worker; starting 48 cost every `--emulator` command ~15 ms
# more than 16.
THREADS = 16
MAX_THREADS = 1024
# listen(2)'s backlog: cheroot's 5 drops connections beyond it while the accepting thread is
# busy, and the client's kernel retries a dropped SYN only after 1, 3, 7 s
BACKLOG = 1024
# Seconds a kept-alive connection may sit idle before the server closes it (the real
# service's load balancers use 60).
IDLE_TIMEOUT = 60
# Connections kept alive at once. cheroot's default (10) answers `Connection: close` beyond
# it, so a client pooling 32 connections (ours) would reconnect for most requests; the
# service's load balancers keep every client connection open.
KEEP_ALIVE_LIMIT = 1024
# How often cheroot's connection loop wakes when nothing happens; stopping waits for its next
# wake-up (0.5 s by default, which every `--emulator` command would pay on exit).
WAKE_SECONDS = 0.05


class _Gateway(wsgi.Gateway_10):
    """WSGI 1.0 with one addition: `DROP_CONNECTION`, a callable that closes the TCP
    connection under the request, so a fault can make the client see a connection error."""

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        conn = self.req.conn
        environ[DROP_CONNECTION] = lambda: _shutdown(conn.socket)
        return environ


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Reader:
    """A connection's request stream: cheroot's reader with its buffer in one bytearray.

    cheroot reads through `_pyio` (the pure-Python io module), so every header line cost
    some ten Python calls; a profile of an apply against the emulator put that reading at
    ~5 % of the whole process's CPU. Same contract as cheroot's `StreamReader`: `read(n)`
    returns n bytes unless the stream ends, `readline(n)` stops at a newline or n bytes,
    `has_data` says whether bytes wait in the buffer (a pipelined request), and socket
    errors (a timeout, a reset) reach cheroot unchanged.
    """

    def __init__(self, sock: socket.socket, bufsize: int) -> None:
        self._sock = sock
        self._buf = bytearray()
        self._chunk = max(bufsize, 65536)
        self.bytes_read = 0
        self.closed = False

    def _fill(self) -> bool:
        data = self._sock.recv(self._chunk)
        self._buf += data
        return bool(data)

    def _take(self, n: int) -> bytes:
        with memoryview(self._buf) as view:  # one copy out, not a slice and then a copy
            out = bytes(view[:n])
        del self._buf[:n]
        self.bytes_read += n
        return out

    def readline(self, size: int = -1) -> bytes:
        searched = 0
        while True:
            end = self._buf.find(b"\n", searched)
            if end >= 0:
                return self._take(end + 1 if size < 0 else min(end + 1, size))
            if 0 <= size <= len(self._buf):
                return self._take(size)
            searched = len(self._buf)
            if not self._fill():
                return self._take(len(self._buf))

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._buf) < size) and self._fill():
            pass
        return self._take(len(self._buf) if size < 0 else min(size, len(self._buf)))

    def has_data(self) -> bool:
        return bool(self._buf)

    def close(self) -> None:
        self.closed = True


class _Writer:
    """A connection's response stream: each write sent whole, as cheroot's writer does."""

    def __init__(self, sock: socket.socket, bufsize: int) -> None:
        self._sock = sock
        self.bytes_written = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self._sock.sendall(data)
        self.bytes_written += len(data)
        return len(data)

    def flush(self) -> None:
        return

    def close(self) -> None:
        self.closed = True


def _makefile(sock: socket.socket, mode: str = "r", bufsize: int = 8192) -> _Reader | _Writer:
    return _Reader(sock, bufsize) if "r" in mode else _Writer(sock, bufsize)


class _Connection(cheroot_server.HTTPConnection):
    """cheroot's connection over `_Reader` and `_Writer` (plain HTTP only: no TLS here)."""

    def __init__(self, server: Any, sock: socket.socket, makefile: Any = None) -> None:
        super().__init__(server, sock, _makefile)


class _Server(wsgi.Server):
    """No error log: a fault that dropped a connection is the point, not news. Its worker
    pool grows while connections wait for a worker (cheroot starts a fixed number and never
    adds any)."""

    ConnectionClass = _Connection

    def error_log(self, *args: Any, **kwargs: Any) -> None:
        return

    def process_conn(self, conn: Any) -> None:
        super().process_conn(conn)
        pool = self.requests
        if not self.ready or len(pool._threads) >= MAX_THREADS:
            return
        # connections queued beyond the workers free to take them (one started a moment
        # ago, or about to take its connection, counts as free: this errs towards fewer)
        short = pool.qsize - pool.idle
        if short > 0:
            self._grow(min(short, MAX_THREADS - len(pool._threads)))

    def _grow(self, count: int) -> None:
        """Start workers without waiting for them to run (cheroot's `grow` sleeps 0.1 s for
        each one not yet running, in the thread that accepts connections). Daemons: one
        started while the server stops must not hold the process open."""
        for _ in range(count):
            worker = WorkerThread(self)
            worker.name = f"iotc-emulator worker {len(self.requests._threads) + 1}"
            worker.daemon = True
            worker.start()
            self.requests._threads.append(worker)


class EmulatorServer:
    """A started emulator: `url` is its root (discovery lives under it)."""

    def __init__(self, app: Flask | None = None, host: str = "127.0.0.1", port: int = 0,
                 **app_kwargs: Any) -> None:
        self.app = app or create_app(**app_kwargs)
        self._server = _Server((host, port), self.app, numthreads=THREADS,
                               request_queue_size=BACKLOG,
                               timeout=IDLE_TIMEOUT, shutdown_timeout=1,
                               server_name="iotc-emulator")
        self._server.gateway = _Gateway
        self._server.expiration_interval = WAKE_SECONDS
        self._server.keep_alive_conn_limit = KEEP_ALIVE_LIMIT
        self._server.prepare()
        self.host = host
        self.port: int = self._server.bind_addr[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve, name="iotc-emulator",
                                        daemon=True)

    @property
    def emulator(self) -> Any:
        return self.app.extensions[EXTENSION]

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/api/uisdk"

    def start(self) -> EmulatorServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.emulator.stopping.set()  # requests held by latency or a hang fault end now
        self._server.stop()
        self.emulator.state.store.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
