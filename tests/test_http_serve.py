"""``layerstore serve`` as a process: start-up checks and draining on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.backends._servers import free_port
from tests.locations import path_of

#: Upper bound for anything a loaded machine should finish in.
PATIENCE = 30.0


def write_config(tmp_path: Path, root: Path, port: int, **http: str) -> Path:
    extra = "".join(f"  {k}: {v}\n" for k, v in http.items())
    path = tmp_path / "config.yml"
    path.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: s\n{extra}"
    )
    return path


def run_serve(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "layerstore_core.cli", "serve", "--config",
                           str(config)], capture_output=True, text=True, timeout=PATIENCE)


def test_unusable_storage_fails_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    done = run_serve(write_config(tmp_path, blocker / "registry", free_port()))
    assert done.returncode != 0
    assert "storage.filesystem: the storage is not usable" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_port_in_use_names_http_addr(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_serve(write_config(tmp_path, tmp_path / "data", port))
    assert done.returncode != 0
    assert f"http.addr: cannot listen on 127.0.0.1:{port}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@contextmanager
def serving(config: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "layerstore_core.cli", "serve", "--config",
                             str(config)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + PATIENCE
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "layerstore serve did not start"
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(PATIENCE)


def test_sigterm_drains_then_closes(tmp_path: Path) -> None:
    """A request that finishes within http.draintimeout is answered; a stalled one is cut."""
    port = free_port()
    config = write_config(tmp_path, tmp_path / "data", port, draintimeout="3s",
                          bodyidletimeout="10m")
    with serving(config, port) as proc:
        base = f"http://127.0.0.1:{port}"
        started = [path_of(httpx.post(f"{base}/v2/a/blobs/uploads/").headers["Location"])
                   for _ in range(2)]
        stalled = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
        stalled.sendall(f"PATCH {started[1]} HTTP/1.1\r\nHost: x\r\n"
                        "Content-Length: 100\r\n\r\n".encode() + b"x" * 10)
        result: dict[str, int] = {}

        def slow_body() -> Iterator[bytes]:
            for _ in range(10):
                yield b"y" * 1000
                time.sleep(0.1)

        def finishing() -> None:
            r = httpx.patch(base + started[0], content=slow_body(), timeout=PATIENCE)
            result["status"] = r.status_code

        worker = threading.Thread(target=finishing)
        worker.start()
        time.sleep(0.3)  # both are in flight now
        proc.send_signal(signal.SIGTERM)
        worker.join(PATIENCE)
        assert result.get("status") == 202
        # The stalled upload did not hold it past the drain (uvicorn re-raises the SIGTERM).
        assert proc.wait(PATIENCE) in (0, -signal.SIGTERM)
        stalled.settimeout(PATIENCE)
        try:
            assert stalled.recv(65536) == b""
        except ConnectionResetError:
            pass
        stalled.close()
        assert not os.path.exists(tmp_path / "data" / ".layerstore-probe")
