"""``layerstore serve --workers N`` (``http.workers``): N processes accepting on one socket.

Each worker is a whole, independent server (all state is in the storage, the cache is shared or
per process), so one host uses its cores. uvicorn's supervisor binds the socket once, starts the
workers, restarts any that dies, and on SIGHUP replaces them one at a time (graceful reload: a
worker finishes its requests before it exits). The validated config reaches the workers through
an environment variable, so every worker serves exactly what the parent checked.
"""

from __future__ import annotations

import base64
import os
import pickle
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

from .app import RegistryApp, create_app
from .config import Config

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


def run_workers(server_config: uvicorn.Config, sock: socket.socket | None) -> None:
    """Serve with ``server_config.workers`` processes on ``sock`` until interrupted."""
    Multiprocess(server_config, sockets=[sock or server_config.bind_socket()]).run()


def export_config(config: Config) -> None:
    """Hand the validated config to the workers this process will start."""
    os.environ[CONFIG_ENV] = base64.b64encode(pickle.dumps(config)).decode("ascii")
