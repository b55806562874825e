"""A cold blob's body read from the upstream connection (``proxy/body.py``), against a real server.

The upstream is a small ASGI app under uvicorn that sends a known body in uneven pieces (some
with the headers, so h11 holds a first piece), with a ``Content-Length``, chunked, or cut short.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from layerstore_core.proxy.body import body_chunks
from layerstore_core.proxy.config import Upstream
from layerstore_core.proxy.errors import UpstreamError
from layerstore_core.proxy.upstream import UpstreamClient
from tests.backends._servers import serve_asgi

SIZE = 9 * 2**20 + 12345  # several chunks and a short last one
CHUNK = 2**20


def payload(n: int) -> bytes:
    block = hashlib.sha256(b"seed").digest() * 2048  # 64 KiB, not periodic at chunk edges
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(i.to_bytes(4, "big")).digest() + block
        i += 1
    return bytes(out[:n])


BODY = payload(SIZE)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    kind = scope["path"].rsplit("/", 1)[-1]
    headers = [(b"content-type", b"application/octet-stream")]
    body = BODY
    if kind != "chunked":
        headers.append((b"content-length", str(len(body)).encode()))
    if kind == "short":
        body = body[:-1000]  # uvicorn closes the connection: the client sees it end early
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    sizes = [7, 65536 * 3 + 5, 1, 2**20 + 17]  # uneven, some below and some past a chunk
    at, i = 0, 0
    while at < len(body):
        piece = body[at:at + sizes[i % len(sizes)]]
        await send({"type": "http.response.body", "body": piece, "more_body": True})
        at, i = at + len(piece), i + 1
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture(scope="module")
def client() -> Iterator[UpstreamClient]:
    with serve_asgi(app, log_level="critical") as url:
        upstream = UpstreamClient(Upstream(url))
        yield upstream
        upstream.close()


def test_a_body_with_a_length_comes_in_whole_chunks_byte_for_byte(client: UpstreamClient) -> None:
    resp = client.request("GET", "x", "blobs/plain")
    try:
        chunks = list(body_chunks(resp, CHUNK))  # every chunk kept: a reused buffer would show
    finally:
        resp.close()
    assert [len(c) for c in chunks] == [CHUNK] * (SIZE // CHUNK) + [SIZE % CHUNK]
    assert b"".join(chunks) == BODY


def test_chunks_dropped_by_the_consumer_are_reused_and_stay_intact(
        client: UpstreamClient) -> None:
    resp = client.request("GET", "x", "blobs/plain")
    seen = hashlib.sha256()
    kept = []
    ids = set()
    try:
        for i, chunk in enumerate(body_chunks(resp, CHUNK)):
            ids.add(id(chunk))
            seen.update(chunk)
            if i == 2:
                kept.append((chunk, bytes(chunk)))  # held on to while later chunks arrive
    finally:
        resp.close()
    assert seen.digest() == hashlib.sha256(BODY).digest()
    assert len(ids) < SIZE // CHUNK  # buffers came back
    assert all(chunk == copy for chunk, copy in kept)  # a held buffer was never refilled


def test_a_chunked_body_is_read_through_httpx(client: UpstreamClient) -> None:
    resp = client.request("GET", "x", "blobs/chunked")
    try:
        assert "content-length" not in resp.headers
        chunks = list(body_chunks(resp, CHUNK))
    finally:
        resp.close()
    assert b"".join(chunks) == BODY and all(len(c) >= CHUNK for c in chunks[:-1])


def test_a_body_cut_short_is_an_upstream_error(client: UpstreamClient) -> None:
    resp = client.request("GET", "x", "blobs/short")
    got = 0
    try:
        with pytest.raises(UpstreamError, match="short"):
            for chunk in body_chunks(resp, CHUNK):
                got += len(chunk)
    finally:
        resp.close()
    assert got < SIZE - 1000
    resp = client.request("GET", "x", "blobs/plain")  # the client still works afterwards
    try:
        assert b"".join(body_chunks(resp, CHUNK)) == BODY
    finally:
        resp.close()
