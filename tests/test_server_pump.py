"""The request-body pump holds one batch per upload: two fixed halves, reused, never grown."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT

from layerstore_core import Registry
from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.server import Config, memory
from layerstore_core.server.reads import READ_SIZE
from layerstore_core.server.state import WRITE_BATCH, ServerState
from layerstore_core.server.tokens import TokenSigner


class _Body:
    """Just what ``pump`` uses of a Request: ``stream()``."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def stream(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            await asyncio.sleep(0)
            yield chunk


def test_pump_writes_through_two_fixed_half_batches() -> None:
    half = WRITE_BATCH // 2
    chunks = [os.urandom(n) for n in (3 * half + 7, 1, half - 1, 65536, 5 * half + 3)]
    whole = b"".join(chunks)
    seen = hashlib.sha256()
    sizes: list[int] = []
    owners: set[int] = set()

    def write(view: memoryview) -> None:
        assert isinstance(view, memoryview)
        owners.add(id(view.obj))
        sizes.append(view.nbytes)
        seen.update(view)

    state = ServerState(config=Config(), registry=Registry(InMemoryDriver()),
                        signer=TokenSigner("s"))
    try:
        total = asyncio.run(state.pump(_Body(chunks), write))  # type: ignore[arg-type]  # duck-typed Request
    finally:
        state.executor.shutdown()
    assert total == len(whole) and seen.digest() == hashlib.sha256(whole).digest()
    assert max(sizes) <= half and sizes[:-1] == [half] * (len(sizes) - 1)
    assert len(owners) == 2, "the body went through more than two buffers"


def test_malloc_tuning_applies_where_glibc_is() -> None:
    assert memory.tune_malloc() is (memory._LIBC is not None)
    memory.upload_started()
    memory.upload_finished()  # the last one out trims; must not fail
    assert memory._uploads == 0


def _serve_body_sizes(loop: str, body: bytes, requests: int) -> tuple[list[int], list[str]]:
    """Run uvicorn with the server's protocol on ``loop``; the body pieces the app received."""
    import threading
    import time

    import httpx
    import uvicorn

    from layerstore_core.server.config import Limits
    from layerstore_core.server.guard import protocol_for
    from tests.backends._servers import free_port

    pieces: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen = hashlib.sha256()
        while True:
            message = await receive()
            pieces.append(len(message.get("body", b"")))
            seen.update(message.get("body", b""))
            await asyncio.sleep(0.001)  # a slow consumer: the loop must pause reading, not pile up
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": seen.hexdigest().encode()})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, loop=loop, log_level="warning",
                                           http=protocol_for(Limits())))  # type: ignore[arg-type]  # a BufferedProtocol works
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            digests = [client.post("/", content=body).text for _ in range(requests)]
    finally:
        server.should_exit = True
        thread.join(30)
    return pieces, digests


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_request_body_arrives_in_pieces_of_one_read_buffer(loop: str) -> None:
    """Socket reads go into the connection's one READ_SIZE buffer: the app gets at most that
    plus uvicorn's 64 KiB high-water mark at a time (uvloop alone reads 256,000-byte pieces),
    over keep-alive requests on one connection, the body intact."""
    body = os.urandom(8 * 2**20 + 5)
    pieces, digests = _serve_body_sizes(loop, body, 2)
    assert digests == [hashlib.sha256(body).hexdigest()] * 2
    assert sum(pieces) == 2 * len(body)
    assert max(pieces) <= READ_SIZE + HIGH_WATER_LIMIT, max(pieces)
