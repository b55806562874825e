"""Read-only requests make no backend write, on every backend; POST and cancel make only theirs.

A counting :class:`StorageDriver` wraps the backend's real driver and records each call that can
change the backend (``put_content``, ``move``, ``delete``, writers opened afresh, and every
writer ``write``/``close``/``commit``/``cancel``). On S3 the real requests are also counted at
the moto server, through the counting proxy (``tests/s3proxy.py``).
"""

from __future__ import annotations

import builtins
import collections
import hashlib
import json
from collections.abc import Iterator
from typing import IO, Any

import httpx
import pytest

from layerstore_core import FileInfo, FileWriter, StorageDriver
from layerstore_core.server.threaded import ThreadedServer
from layerstore_core.testing import Backend
from tests.backends.s3 import s3_params
from tests.s3proxy import WRITES, S3Proxy
from tests.test_http_api import OCI_MANIFEST, make_config, with_query

MiB = 2**20
CHUNK = b"layer bytes " * 1000


class CountingWriter(FileWriter):
    """Passes everything to the real writer, counting the calls that may write."""

    def __init__(self, inner: FileWriter, counts: collections.Counter[str]) -> None:
        super().__init__(inner.driver, inner.path, inner.size)
        self._inner, self._counts = inner, counts

    def _write(self, data: memoryview) -> None:
        self._counts["writer.write"] += 1
        self._inner.write(data)

    def _close(self) -> None:
        self._counts["writer.close"] += 1
        self._inner.close()

    def _commit(self) -> None:
        self._counts["writer.commit"] += 1
        self._inner.commit()

    def _cancel(self) -> None:
        self._counts["writer.cancel"] += 1
        self._inner.cancel()

    def _release(self) -> None:
        self._inner.release()


class CountingDriver(StorageDriver):
    """A real driver behind a wrapper that counts the calls able to change the backend."""

    name = "counting"
    Params = dict

    def __init__(self, inner: StorageDriver) -> None:
        self.inner = inner
        self.counts: collections.Counter[str] = collections.Counter()

    @property
    def preferred_chunk_size(self) -> int | None:
        return self.inner.preferred_chunk_size

    def writes(self) -> dict[str, int]:
        return {op: n for op, n in self.counts.items() if op != "writer(append)"}

    def _get_content(self, path: str) -> bytes:
        return self.inner.get_content(path)

    def _put_content(self, path: str, data: bytes) -> None:
        self.counts["put_content"] += 1
        self.inner.put_content(path, data)

    def _reader(self, path: str, offset: int) -> IO[bytes]:
        return self.inner.reader(path, offset)

    def _writer(self, path: str, append: bool) -> FileWriter:
        self.counts["writer(append)" if append else "writer(new)"] += 1
        return CountingWriter(self.inner.writer(path, append), self.counts)

    def _stat(self, path: str) -> FileInfo:
        return self.inner.stat(path)

    def _list(self, path: str) -> builtins.list[str]:
        return self.inner.list(path)

    def _move(self, source: str, dest: str) -> None:
        self.counts["move"] += 1
        self.inner.move(source, dest)

    def _delete(self, path: str) -> None:
        self.counts["delete"] += 1
        self.inner.delete(path)

    def _walk(self, path: str) -> Iterator[FileInfo]:
        return self.inner.walk(path)

    def close(self) -> None:
        self.inner.close()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def counted(any_backend: Backend) -> Iterator[tuple[httpx.Client, CountingDriver]]:
    driver = CountingDriver(any_backend.make())
    with ThreadedServer(make_config(any_backend), driver) as srv:
        with httpx.Client(base_url=srv.url, timeout=120) as c:
            yield c, driver
    driver.close()


def _upload_with_data(c: httpx.Client, name: str) -> str:
    started = c.post(f"/v2/{name}/blobs/uploads/")
    assert started.status_code == 202, started.text
    r = c.patch(started.headers["Location"], content=CHUNK)
    assert r.status_code == 202, r.text
    return r.headers["Location"]


def _push_image(c: httpx.Client, name: str) -> tuple[str, str]:
    config = b"{}"
    for data in (config, CHUNK):
        r = c.post(f"/v2/{name}/blobs/uploads/", params={"digest": sha(data)}, content=data)
        assert r.status_code == 201, r.text
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha(CHUNK), "size": len(CHUNK)}],
    }).encode()
    r = c.put(f"/v2/{name}/manifests/v1", content=manifest,
              headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    return sha(CHUNK), r.headers["Docker-Content-Digest"]


def test_read_only_requests_make_no_backend_write(
    counted: tuple[httpx.Client, CountingDriver],
) -> None:
    c, driver = counted
    location = _upload_with_data(c, "ro/repo")
    layer, manifest = _push_image(c, "ro/repo")
    driver.counts.clear()
    status = c.get(location)
    assert status.status_code == 204 and status.headers["Range"] == f"0-{len(CHUNK) - 1}"
    assert driver.writes() == {}, "GET of an upload's status wrote to the backend"
    assert c.get(status.headers["Location"]).status_code == 204  # the new token works too
    reads = [
        c.head(f"/v2/ro/repo/blobs/{layer}"), c.get(f"/v2/ro/repo/blobs/{layer}"),
        c.get(f"/v2/ro/repo/blobs/{layer}", headers={"Range": "bytes=1-10"}),
        c.head("/v2/ro/repo/manifests/v1"), c.get(f"/v2/ro/repo/manifests/{manifest}"),
        c.get("/v2/ro/repo/tags/list"), c.get("/v2/_catalog"), c.get("/v2/"),
    ]
    assert [r.status_code for r in reads] == [200, 200, 206, 200, 200, 200, 200, 200]
    refused = c.patch(location, content=b"x", headers={"Content-Range": "0-0"})  # wrong offset
    assert refused.status_code == 416
    assert driver.writes() == {}, "a read-only request or a refused chunk wrote"
    assert c.put(with_query(status.headers["Location"], digest=sha(CHUNK))).status_code == 201


def test_post_writes_startedat_and_an_empty_write_cancel_opens_no_second_writer(
    counted: tuple[httpx.Client, CountingDriver],
) -> None:
    c, driver = counted
    started = c.post("/v2/ro/post/blobs/uploads/")
    assert started.status_code == 202
    # startedat, and the empty data write every chunk continues (one writer per upload)
    assert driver.writes() == {"put_content": 1, "writer(new)": 1, "writer.close": 1}, \
        driver.writes()
    driver.counts.clear()
    empty = c.delete(started.headers["Location"])  # cancel of an upload that holds no data
    assert empty.status_code == 204
    assert driver.counts["writer(new)"] == 0 and driver.counts["writer(append)"] <= 1
    location = _upload_with_data(c, "ro/post")
    driver.counts.clear()
    assert c.delete(location).status_code == 204
    assert driver.counts["writer(append)"] == 1 and driver.counts["writer(new)"] == 0
    assert c.get(location).status_code == 404


def test_empty_upload_commits_without_a_fresh_writer(
    counted: tuple[httpx.Client, CountingDriver],
) -> None:
    c, driver = counted
    started = c.post("/v2/ro/empty/blobs/uploads/")
    driver.counts.clear()
    r = c.put(with_query(started.headers["Location"], digest=sha(b"")))
    assert r.status_code == 201, r.text
    assert driver.counts["writer(new)"] == 0
    assert c.get(f"/v2/ro/empty/blobs/{sha(b'')}").content == b""


def test_status_get_sends_no_write_request_to_s3(moto_endpoint: str) -> None:
    """Counted at the S3 server itself: what the driver sends, below every wrapper."""
    from layerstore_core import load_driver

    with S3Proxy(moto_endpoint) as proxy:
        params: dict[str, Any] = s3_params(proxy.url, chunksize=5 * MiB)
        backend = Backend("s3", "s3", params)
        driver = load_driver("s3", **params)
        with ThreadedServer(make_config(backend), driver) as srv:
            with httpx.Client(base_url=srv.url, timeout=120) as c:
                with proxy.counting() as posted:
                    started = c.post("/v2/ro/s3/blobs/uploads/")
                data = b"s" * (6 * MiB)  # one whole 5 MiB part and a tail
                r = c.patch(started.headers["Location"], content=data)
                assert r.status_code == 202, r.text
                with proxy.counting() as status:
                    assert c.get(r.headers["Location"]).status_code == 204
                with proxy.counting() as cancel:
                    assert c.delete(r.headers["Location"]).status_code == 204
        driver.close()
    assert {op for op in status if op in WRITES} == set(), dict(status)
    # startedat only: the first chunk's fresh write claims offset 0 (fresh_writes_fenced)
    assert {op: n for op, n in posted.items() if op in WRITES} == {"PutObject": 1}, dict(posted)
    assert cancel["AbortMultipartUpload"] == 1, dict(cancel)


def test_chunks_carry_their_hash_state_in_the_token(moto_endpoint: str) -> None:
    """A young upload's chunks save no hash-state object, and its commit reads none."""
    from layerstore_core import load_driver

    seen: list[str] = []
    with S3Proxy(moto_endpoint) as proxy:
        params: dict[str, Any] = s3_params(proxy.url, chunksize=5 * MiB)
        driver = load_driver("s3", **params)
        proxy.tracer = lambda op, request: seen.append(f"{op} {request}")
        with ThreadedServer(make_config(Backend("s3", "s3", params)), driver) as srv:
            with httpx.Client(base_url=srv.url, timeout=120) as c:
                first, second = b"a" * (6 * MiB), b"b" * MiB
                started = c.post("/v2/ro/carried/blobs/uploads/")
                r = c.patch(started.headers["Location"], content=first)
                assert r.status_code == 202, r.text
                r = c.patch(r.headers["Location"], content=second,
                            headers={"Content-Range": f"{len(first)}-{len(first) + MiB - 1}"})
                assert r.status_code == 202, r.text
                digest = sha(first + second)
                done = c.put(with_query(r.headers["Location"], digest=digest))
                assert done.status_code == 201, done.text
                got = c.get(f"/v2/ro/carried/blobs/{digest}", follow_redirects=True)
                assert got.content == first + second
                started = c.post("/v2/ro/carried/blobs/uploads/")  # then all in the PUT
                done = c.put(with_query(started.headers["Location"], digest=sha(second)),
                             content=second)
                assert done.status_code == 201, done.text
        proxy.tracer = None
        driver.close()
    uploads = [line for line in seen if "/_uploads/" in line]
    assert uploads and not [line for line in uploads if "/hashstates/" in line], uploads
    # commits delete the upload's files by name: nothing is listed
    assert not [line for line in seen if line.startswith("List")], seen
