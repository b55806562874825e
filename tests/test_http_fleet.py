"""Two ``layerstore serve`` processes sharing a secret and a backend take turns on one upload."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx

from layerstore_core.testing import Backend
from tests.backends._servers import free_port
from tests.images import RegistryProcess, write_config
from tests.locations import path_of

CHUNK = 256 * 1024


def test_alternate_chunks_across_processes(shared_backend: Backend, tmp_path: Path) -> None:
    servers = []
    for i in range(2):
        port = free_port()
        cfg = write_config(tmp_path / f"config{i}.yml", shared_backend.driver,
                           shared_backend.params, port)
        servers.append(RegistryProcess.layerstore(cfg, port, tmp_path / f"server{i}.log"))
    try:
        urls = [s.wait_ready().url for s in servers]
        data = os.urandom(CHUNK * 5 + 1234)
        r = httpx.post(f"{urls[0]}/v2/fleet/blobs/uploads/")
        assert r.status_code == 202, r.text
        location = path_of(r.headers["Location"])
        for n, start in enumerate(range(0, len(data), CHUNK)):
            chunk = data[start:start + CHUNK]
            r = httpx.patch(urls[n % 2] + location, content=chunk, headers={
                "Content-Range": f"{start}-{start + len(chunk) - 1}"}, timeout=60)
            assert r.status_code == 202, (n, r.text)
            assert r.headers["Range"] == f"0-{start + len(chunk) - 1}"
            location = path_of(r.headers["Location"])
        # the other process also refuses a stale offset with the current Range
        stale = httpx.patch(urls[1] + location, content=b"x", headers={"Content-Range": "0-0"})
        assert stale.status_code == 416 and stale.headers["Range"] == f"0-{len(data) - 1}"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = httpx.put(f"{urls[1]}{location}&digest={quote(digest, safe='')}", timeout=60)
        assert r.status_code == 201, r.text
        assert httpx.get(f"{urls[0]}/v2/fleet/blobs/{digest}", follow_redirects=True,
                         timeout=60).content == data
        # a token signed with another secret is refused
        path = urlsplit(location).path
        forged = httpx.get(f"{urls[0]}{path}?_state=e30.AAAA")
        assert forged.status_code == 400
    finally:
        for s in servers:
            s.stop()
