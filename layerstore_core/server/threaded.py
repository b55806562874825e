"""A real uvicorn server on a background thread, for tests and embedding.

It serves over a real socket (port 0 picks a free one), so clients exercise the same HTTP stack
as ``layerstore serve``, while the driver can be an in-process object (``inmemory``).
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn

from ..driver import StorageDriver
from .app import RegistryApp, create_app
from .config import Config
from .serve import uvicorn_config

STARTUP_TIMEOUT = 20.0


class ThreadedServer:
    """``with ThreadedServer(config) as srv: httpx.get(srv.url + "/v2/")``."""

    def __init__(self, config: Config, driver: StorageDriver | None = None) -> None:
        self.app: RegistryApp = create_app(config, driver)
        self._server = uvicorn.Server(
            uvicorn_config(self.app, config, host="127.0.0.1", port=0, access_log=False,
                           log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.url = ""

    def start(self) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("layerstore test server did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
