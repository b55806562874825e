"""A kill -9 loop: uploads SIGKILLed at random points, each resumed on a fresh process.

For chunked uploads (PATCHes with ``Content-Range``) and streamed ones (one PATCH with a
chunked body, no length), the server is killed at :data:`KILLS` random byte offsets while it
reads the body. After each kill a new process starts on the same port and storage; the client
asks the upload's status, resumes from the ``Range`` it reports and, at the end, commits. The
blob must be committed and read back byte for byte. The seed is in every failure message.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from layerstore_core.testing import Backend
from tests.killable import KillableServer
from tests.locations import path_of

#: Kill points per upload (each costs a server start, ~1-2 s).
KILLS = 3
SIZE = 3 * 2**20 + 4321
CHUNK = 512 * 1024
PIECE = 64 * 1024
TIMEOUT = httpx.Timeout(120.0)


class Killed(Exception):
    """The body generator killed the server at its kill point."""


def _body(data: bytes, kill_at: int | None, base: int,
          kill: Callable[[], None]) -> Iterator[bytes]:
    """Yield ``data`` (which starts at upload offset ``base``); SIGKILL once past ``kill_at``."""
    for start in range(0, len(data), PIECE):
        yield data[start:start + PIECE]
        if kill_at is not None and base + start + PIECE >= kill_at:
            kill()
            raise Killed


def _status(url: str, location: str) -> tuple[int, str]:
    """The upload's offset from ``Range`` and its new Location.

    ``0-0`` is Distribution's "empty" (it cannot say "one byte"); the server stores whole reads,
    so after a kill past the first 64 KiB piece one stored byte is not a case to tell apart.
    """
    r = httpx.get(url + location, timeout=TIMEOUT)
    assert r.status_code == 204, r.text
    got = r.headers.get("Range", "0-0")
    offset = 0 if got == "0-0" else int(got.split("-")[1]) + 1
    return offset, path_of(r.headers.get("Location", location))


def _send(url: str, location: str, data: bytes, offset: int, streamed: bool,
          kill_at: int | None, kill: Callable[[], None]) -> str:
    """Send ``data[offset:]`` (chunked: CHUNK-sized PATCHes; streamed: one PATCH)."""
    if streamed:
        r = httpx.patch(url + location, content=_body(data[offset:], kill_at, offset, kill),
                        timeout=TIMEOUT)
        assert r.status_code == 202, r.text
        return path_of(r.headers["Location"])
    for start in range(offset, len(data), CHUNK):
        chunk = data[start:start + CHUNK]
        headers = {"Content-Range": f"{start}-{start + len(chunk) - 1}",
                   "Content-Length": str(len(chunk))}
        r = httpx.patch(url + location, content=_body(chunk, kill_at, start, kill),
                        headers=headers, timeout=TIMEOUT)
        assert r.status_code == 202, r.text
        location = path_of(r.headers["Location"])
    return location


@pytest.mark.parametrize(("backend_id", "streamed"), [
    ("filesystem", False), ("filesystem", True), ("s3", False),  # S3 keeps whole 5 MiB parts
    ("gcs_fake", False),  # GCS: whole 1 MiB parts in one segment object per writer session
], ids=["filesystem-chunked", "filesystem-streamed", "s3-chunked", "gcs-fake-chunked"])
def test_kill9_loop_resumes_from_range(
    backend_id: str, streamed: bool, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    backend: Backend = request.getfixturevalue(f"backend_{backend_id}")
    seed = int.from_bytes(os.urandom(4))
    rng = random.Random(seed)
    data = rng.randbytes(SIZE)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    kills = sorted(rng.sample(range(PIECE, SIZE), KILLS))
    server = KillableServer(backend, tmp_path)
    try:
        url = server.start()
        r = httpx.post(f"{url}/v2/kill/loop/blobs/uploads/", timeout=TIMEOUT)
        assert r.status_code == 202, r.text
        location, offset = path_of(r.headers["Location"]), 0
        for kill_at in kills:
            if kill_at <= offset:  # an earlier kill point: the upload is already past it
                continue
            with pytest.raises(httpx.TransportError):
                try:
                    _send(url, location, data, offset, streamed, kill_at, server.kill)
                except Killed as exc:  # killed between two PATCHes: same as a lost request
                    raise httpx.TransportError("killed") from exc
            url = server.start()
            reported, location = _status(url, location)
            assert reported <= kill_at, (seed, kill_at, reported)
            offset = reported
        location = _send(url, location, data, offset, streamed, None, server.kill)
        r = httpx.put(f"{url}{location}&digest={quote(digest, safe='')}", timeout=TIMEOUT)
        assert r.status_code == 201, (seed, r.text)
        got = httpx.get(f"{url}/v2/kill/loop/blobs/{digest}", follow_redirects=True,
                        timeout=TIMEOUT)
        assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == \
            digest.split(":")[1], seed
    finally:
        server.stop()
