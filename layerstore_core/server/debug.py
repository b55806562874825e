"""The debug server (``http.debug.addr``): ``/debug/health`` and the Prometheus endpoint.

It runs on its own thread and event loop, so a saturated registry still answers probes and
scrapes, and it is never behind the registry's authentication (bind it to a private address).
"""

from __future__ import annotations

import json
import logging
import threading
import time

import uvicorn

from .config import DebugConfig
from .health import StorageHealth
from .http import Receive, Response, Scope, Send, json_response
from .metrics import exposition

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = 20.0


class DebugApp:
    """The debug server's ASGI app."""

    def __init__(self, config: DebugConfig, health: StorageHealth | None) -> None:
        self.config = config
        self.health = health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        resp = self._answer(scope)
        await send({"type": "http.response.start", "status": resp.status,
                    "headers": [(k.encode(), v.encode()) for k, v in resp.headers]})
        await send({"type": "http.response.body",
                    "body": b"" if scope["method"] == "HEAD" else resp.body})

    def _answer(self, scope: Scope) -> Response:
        path, method = scope["path"], scope["method"]
        if method not in ("GET", "HEAD"):
            return json_response(405, b'{"error": "method not allowed"}')
        if path == "/debug/health":
            status = self.health.status() if self.health is not None else {}
            return json_response(503 if status else 200, json.dumps(status).encode())
        if self.config.prometheus and path == self.config.prometheus_path:
            accept = dict(scope.get("headers", [])).get(b"accept", b"").decode("latin-1")
            body, content_type = exposition(accept)
            return Response(200, [("Content-Type", content_type),
                                  ("Content-Length", str(len(body)))], body)
        return json_response(404, b'{"error": "not found"}')


class DebugServer:
    """uvicorn serving :class:`DebugApp` on a daemon thread."""

    def __init__(self, config: DebugConfig, health: StorageHealth | None) -> None:
        self._server = uvicorn.Server(uvicorn.Config(
            DebugApp(config, health), host=config.host, port=config.port, log_config=None,
            access_log=False, lifespan="off", log_level="warning",
        ))
        self._thread = threading.Thread(target=self._server.run, name="layerstore-debug",
                                        daemon=True)
        self.url = ""

    def start(self) -> DebugServer:
        """Start serving; a port that cannot be bound is an OSError."""
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError("the debug server (http.debug.addr) did not start")
            time.sleep(0.01)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        log.info("debug server on %s", self.url)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
