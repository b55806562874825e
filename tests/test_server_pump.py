"""The request-body pump holds one batch per upload: two fixed halves, reused, never grown."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

from layerstore_core import Registry
from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.server import Config, memory
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
