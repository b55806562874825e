"""A ``layerstore serve`` process that tests kill with SIGKILL and start again on the same port.

Crash tests need the same address and secret after a restart (the client's ``Location`` and
its ``_state`` token must stay valid), so the config and port are fixed once and each
:meth:`KillableServer.start` runs a fresh process on them.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from layerstore_core.testing import Backend
from tests.backends._servers import free_port
from tests.images import RegistryProcess, write_config


class KillableServer:
    """One server at a time on a fixed port and config; ``kill()`` is SIGKILL, no cleanup."""

    def __init__(self, backend: Backend, workdir: Path,
                 extra: Mapping[str, Any] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._workdir = workdir
        self._config = write_config(workdir / "config.yml", backend.driver, backend.params,
                                    self.port, extra)
        self._proc: RegistryProcess | None = None
        self.starts = 0

    def start(self, env: Mapping[str, str] | None = None) -> str:
        """A fresh process (extra ``env`` on top of ours), ready; returns the base URL."""
        assert self._proc is None, "kill() or stop() the running server first"
        self.starts += 1
        log = self._workdir / f"server{self.starts}.log"
        self._proc = RegistryProcess.layerstore(
            self._config, self.port, log, env={**os.environ, **(env or {})})
        self._proc.wait_ready(timeout=120)
        return self.url

    def kill(self) -> None:
        """SIGKILL the whole process group (no drain, no finally blocks), then reap it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.proc.poll() is None:
            os.killpg(proc.proc.pid, signal.SIGKILL)
            proc.proc.wait(30)
        proc.stop()  # closes the log

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.stop()

    def log_tail(self) -> str:
        log = self._workdir / f"server{self.starts}.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""
