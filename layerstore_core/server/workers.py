"""``layerstore serve --workers N`` (``http.workers``): N processes accepting on one socket.

Each worker is a whole, independent server (all state is in the storage, the cache is shared or
per process), so one host uses its cores. The debug server (``http.debug``) runs once, in the
supervisor, and reports every worker's metrics (prometheus-client's multiprocess mode, see
:mod:`.metrics`). uvicorn's supervisor binds the socket once, starts the
workers, restarts any that dies, and on SIGHUP replaces them one at a time (graceful reload: a
worker finishes its requests before it exits). The validated config reaches the workers through
an environment variable, so every worker serves exactly what the parent checked.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import pickle
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable

import uvicorn
from uvicorn.supervisors import Multiprocess

from . import metrics
from .app import RegistryApp, create_app
from .config import Config
from .debug import DebugServer
from .health import StorageHealth

#: Where a worker finds its config (a pickled :class:`Config` from the parent).
CONFIG_ENV = "LAYERSTORE_WORKER_CONFIG"
APP = "layerstore_core.server.workers:worker_app"
#: The guarded HTTP protocol, built in each worker from its config (see ``__getattr__``).
PROTOCOL = "layerstore_core.server.workers:WorkerProtocol"


def _config() -> Config:
    config: Config = pickle.loads(base64.b64decode(os.environ[CONFIG_ENV]))  # noqa: S301 - from our parent
    return config


def __getattr__(name: str) -> object:
    """``WorkerProtocol``: the protocol class is made per config, so it cannot be pickled."""
    if name == "WorkerProtocol":
        from .guard import protocol_for

        return protocol_for(_config().limits)
    raise AttributeError(name)


def worker_app() -> RegistryApp:
    """The app factory each worker calls."""
    from .serve import configure_logging

    config = _config()
    configure_logging(config.log_level)
    return create_app(config)


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, telling ``on_exit`` the pid of every worker that is gone."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket],
                 on_exit: Callable[[int], None]) -> None:
        super().__init__(config, sockets)
        self._on_exit = on_exit
        self._known: set[int] = set()

    def _reap(self) -> None:
        alive = {p.pid for p in self.processes if p.pid is not None}
        for pid in self._known - alive:
            self._on_exit(pid)
        self._known = alive

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        self._reap()

    def restart_all(self) -> None:
        super().restart_all()
        self._reap()


def run_workers(server_config: uvicorn.Config, sock: socket.socket | None,
                on_exit: Callable[[int], None] = lambda pid: None) -> None:
    """Serve with ``server_config.workers`` processes on ``sock`` until interrupted."""
    _Supervisor(server_config, [sock or server_config.bind_socket()], on_exit).run()


def export_config(config: Config) -> None:
    """Hand the validated config to the workers this process will start.

    The debug server is the supervisor's, so it is left out of theirs.
    """
    worker = dataclasses.replace(config, debug=None)
    os.environ[CONFIG_ENV] = base64.b64encode(pickle.dumps(worker)).decode("ascii")


def _watch(health: StorageHealth) -> None:
    """Run the storage health check on a thread of its own (the supervisor has no event loop)."""
    async def blocking(check: Callable[[], None]) -> None:
        await asyncio.to_thread(check)

    threading.Thread(target=lambda: asyncio.run(health.run(blocking)), name="layerstore-health",
                     daemon=True).start()


def serve_supervised(config: Config, app: RegistryApp, server_config: uvicorn.Config,
                     sock: socket.socket | None) -> None:
    """Run the workers; with ``http.debug`` the supervisor serves all workers' metrics.

    The multiprocess directory must be named before the first worker starts (prometheus-client
    reads it on import); ours is made empty here and removed at the end.
    """
    own_dir = None
    if config.debug is not None and metrics.multiprocess_dir() is None:
        own_dir = tempfile.mkdtemp(prefix="layerstore-metrics-")
        os.environ[metrics.MULTIPROC_ENV] = own_dir
    debug = None
    try:
        if config.debug is not None:
            if app.health is not None:
                _watch(app.health)
            debug = DebugServer(config.debug, app.health).start()
        run_workers(server_config, sock, metrics.worker_exited)
    finally:
        if debug is not None:
            debug.stop()
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
