"""Emulator processes for test backends (and benches): start, wait until ready, stop by PID.

Output goes to a log file, never an unread pipe (a full pipe hangs fake-gcs-server). Starting
fails loudly with the log's tail; there is no skip. The leading ``_`` keeps tests/conftest.py
from taking this module for a backend.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 120.0
#: Per-request timeout and retry budget the test backends give their drivers: far above what
#: any request needs, so a loaded CI machine slows tests down but never fails them.
SLOW_MACHINE_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
#: How long an in-thread ASGI server may take to bind and how long its thread may take to exit.
THREAD_SERVER_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for servers that cannot take port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(
    name: str, cmd: list[str], ready_url: str, *, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` until the block ends; ready once ``ready_url`` answers a GET."""
    with tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False) as f:
        log = Path(f.name)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
        )  # fmt: skip
    try:
        _wait_ready(name, proc, ready_url, log)
        yield proc
    finally:
        stop(proc)
        log.unlink(missing_ok=True)


@contextmanager
def serve_asgi(app: Any, *, log_level: str = "warning") -> Iterator[str]:
    """Run ASGI ``app`` under uvicorn in a thread until the block ends; yields its base URL.

    Port 0 (the kernel picks), so no race for a free port; no lifespan, no access log. uvicorn is
    imported here so benches that only want ``free_port`` need not have it.
    """
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None,
                                           lifespan="off", log_level=log_level))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + THREAD_SERVER_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within {THREAD_SERVER_TIMEOUT_S} s")
            time.sleep(0.01)
        port: int = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(THREAD_SERVER_TIMEOUT_S)


def _wait_ready(name: str, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}: {_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=10):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{name} not ready at {url} after {START_TIMEOUT_S} s: {_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


def stop(proc: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM by PID, SIGKILL if it lingers past ``timeout``; reaps the process either way."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
