"""A commit killed at each of its steps is finished by the client's retried PUT, data not re-sent.

The server is stopped exactly at a step by the crash-test hook (``LAYERSTORE_TEST_PAUSE_AT``,
see ``registry/uploads.pause_point``), SIGKILLed there, and a fresh process answers the retry.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from layerstore_core.registry.uploads import PAUSE_ENV, PAUSE_FILE_ENV
from layerstore_core.testing import Backend
from tests.killable import KillableServer
from tests.locations import path_of

TIMEOUT = httpx.Timeout(120.0)
#: More than one S3 part (5 MiB in the test backend), so the move is a real server-side copy.
SIZE = 6 * 2**20 + 17
STEPS = ["commit.marked", "commit.moved", "commit.linked"]


def _wait_for(path: Path, server: KillableServer, deadline_s: float = 120.0) -> None:
    end = time.monotonic() + deadline_s
    while not path.exists():
        assert time.monotonic() < end, f"the server never paused:\n{server.log_tail()}"
        time.sleep(0.05)


def _push_until_paused(url: str, data: bytes, digest: str, pause_file: Path,
                       server: KillableServer) -> str:
    """POST + PATCH, then a PUT that the hook stops mid-commit; returns the PUT's URL."""
    r = httpx.post(f"{url}/v2/crash/commit/blobs/uploads/", timeout=TIMEOUT)
    assert r.status_code == 202, r.text
    r = httpx.patch(url + path_of(r.headers["Location"]), content=data, timeout=TIMEOUT)
    assert r.status_code == 202, r.text
    put_url = f"{url}{path_of(r.headers['Location'])}&digest={quote(digest, safe='')}"

    def put() -> None:
        try:
            httpx.put(put_url, timeout=TIMEOUT)
        except httpx.TransportError:
            pass  # killed while it waited: what a client sees of a crash

    thread = threading.Thread(target=put, daemon=True)
    thread.start()
    _wait_for(pause_file, server)
    server.kill()
    thread.join(60)
    return put_url


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("backend_id", ["filesystem", "s3"])
def test_retried_put_finishes_a_killed_commit(
    backend_id: str, step: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    backend: Backend = request.getfixturevalue(f"backend_{backend_id}")
    data = os.urandom(SIZE)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    pause_file = tmp_path / "paused"
    server = KillableServer(backend, tmp_path)
    try:
        url = server.start({PAUSE_ENV: step, PAUSE_FILE_ENV: str(pause_file)})
        put_url = _push_until_paused(url, data, digest, pause_file, server)
        server.start()
        r = httpx.put(put_url, timeout=TIMEOUT)  # the same request again: no data re-sent
        assert r.status_code == 201, (step, r.text)
        got = httpx.get(f"{url}/v2/crash/commit/blobs/{digest}", follow_redirects=True,
                        timeout=TIMEOUT)
        assert got.status_code == 200 and got.content == data, step
        assert httpx.get(url + put_url[len(url):].split("&digest")[0],
                         timeout=TIMEOUT).status_code == 404  # the upload is gone
    finally:
        server.stop()


def test_a_wrong_digest_never_links_after_a_crash(
    backend_filesystem: Backend, tmp_path: Path
) -> None:
    """The marker proves only its own digest: a retry naming another one links nothing."""
    data, other = os.urandom(SIZE), os.urandom(100)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    wrong = "sha256:" + hashlib.sha256(other).hexdigest()
    pause_file = tmp_path / "paused"
    server = KillableServer(backend_filesystem, tmp_path)
    try:
        url = server.start({PAUSE_ENV: "commit.moved", PAUSE_FILE_ENV: str(pause_file)})
        put_url = _push_until_paused(url, data, digest, pause_file, server)
        server.start()
        r = httpx.put(put_url.replace(quote(digest, safe=""), quote(wrong, safe="")),
                      timeout=TIMEOUT)
        assert r.status_code == 400 and "DIGEST_INVALID" in r.text, r.text
        assert httpx.head(f"{url}/v2/crash/commit/blobs/{wrong}",
                          timeout=TIMEOUT).status_code == 404
    finally:
        server.stop()
