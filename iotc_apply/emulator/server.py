"""Run the emulator app on a real loopback socket, in a background thread.

Used by `iotc emulator serve`, by `--emulator` (an in-process server whose state lives in a
SQLite file) and by the tests: clients always talk real HTTP to 127.0.0.1, never to the WSGI
app directly. Imports nothing from the rest of iotc_apply.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import EXTENSION, create_app


class _QuietHandler(WSGIRequestHandler):
    """No access log, no traceback when a fault has dropped the connection, and HTTP/1.1
    keep-alive, as the real service's load balancers offer (a new TCP connection per request
    would make the emulator, not the client, the bottleneck of every benchmark)."""

    protocol_version = "HTTP/1.1"

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return

    def log_error(self, *args: Any) -> None:
        return


class EmulatorServer:
    """A started emulator: `url` is its root (discovery lives under it)."""

    def __init__(self, app: Flask | None = None, host: str = "127.0.0.1", port: int = 0,
                 **app_kwargs: Any) -> None:
        self.app = app or create_app(**app_kwargs)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server: BaseWSGIServer = make_server(host, port, self.app, threaded=True,
                                                   request_handler=_QuietHandler)
        self._server.daemon_threads = True
        self.host = host
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="iotc-emulator", daemon=True)

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
        self._server.shutdown()
        self._server.server_close()
        self.emulator.state.store.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
