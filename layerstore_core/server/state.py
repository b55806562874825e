"""Per-process server state and the bridges between the event loop and the synchronous service.

The drivers and the blob service block, so every call into them runs on a thread pool. A request
body goes through two fixed buffers of half a :data:`WRITE_BATCH` each, allocated once per
request: one is written on the pool while the other fills, so an upload holds one batch however
long it is, and no buffer is reallocated as it grows (which is what left freed pieces scattered
over glibc's per-thread arenas). Blob reads run one chunk ahead of the socket. Nothing holds a
whole blob.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
from collections.abc import AsyncIterator, Callable
from typing import ParamSpec, Protocol, TypeVar

from ..buffers import BufferPool
from ..gc.stats import GCStats
from ..ops.scrub import ScrubStats
from ..proxy import Proxy
from ..registry import Registry
from ..registry.rediscache import Client
from .auth import Htpasswd
from .config import Config
from .http import Request
from .memory import upload_finished, upload_started
from .tokenauth import TokenAuthenticator
from .tokens import TokenSigner

_T = TypeVar("_T")
_P = ParamSpec("_P")


class _Reader(Protocol):
    def readinto(self, buffer: memoryview, /) -> int: ...
    def close(self) -> None: ...

#: What one upload holds of its request body: two halves, one filling while one is written.
WRITE_BATCH = 4 * 2**20
READ_CHUNK = 1 * 2**20
#: Read buffers a blob GET keeps for reuse: the one read ahead, the one the transport holds.
READ_KEEP = 4
THREADS = 32
#: Advertised as OCI-Chunk-Min-Length when the driver states no preferred part size.
DEFAULT_CHUNK_MIN_LENGTH = 5 * 2**20


@dataclasses.dataclass
class ServerState:
    """What every request handler needs."""

    config: Config
    registry: Registry
    signer: TokenSigner
    htpasswd: Htpasswd | None = None
    token_auth: TokenAuthenticator | None = None
    executor: concurrent.futures.ThreadPoolExecutor = dataclasses.field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(
            THREADS, thread_name_prefix="layerstore"
        )
    )
    chunk_min_length: int = DEFAULT_CHUNK_MIN_LENGTH
    #: The scheduled scrub's counters (``storage.maintenance.scrub``), for a metrics exporter.
    scrub: ScrubStats = dataclasses.field(default_factory=ScrubStats)
    #: The scheduled collector's counters (``storage.maintenance.gc``), for a metrics exporter.
    gc: GCStats = dataclasses.field(default_factory=GCStats)
    #: The ``redis`` section's client (shared cache, fleet-wide leases), if configured.
    redis: Client | None = None
    #: The pull-through cache (``proxy``), when configured.
    proxy: Proxy | None = None

    async def run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Call a blocking function on the pool; mypy checks the arguments against ``fn``."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    async def pump(self, request: Request, write: Callable[[memoryview], object]) -> int:
        """Stream the request body into ``write`` in half batches; the number of bytes written.

        ``write`` must be done with its buffer when it returns (the buffer is refilled next).
        """
        loop = asyncio.get_running_loop()
        pending: asyncio.Future[object] | None = None
        half = WRITE_BATCH // 2
        buffers = [memoryview(bytearray(half)), memoryview(bytearray(half))]
        fill = total = 0
        upload_started()
        try:
            async for chunk in request.stream():
                piece, taken = memoryview(chunk), 0
                while taken < len(piece):
                    n = min(half - fill, len(piece) - taken)
                    buffers[0][fill : fill + n] = piece[taken : taken + n]
                    fill, taken = fill + n, taken + n
                    if fill == half:
                        if pending is not None:
                            await pending
                        pending = loop.run_in_executor(self.executor, write, buffers[0])
                        buffers.reverse()
                        total, fill = total + half, 0
            if pending is not None:
                await pending
                pending = None
            if fill:
                await self.run(write, buffers[0][:fill])
                total += fill
        finally:
            if pending is not None:  # an error while a write runs: let it finish first
                await asyncio.gather(pending, return_exceptions=True)
            upload_finished()
        return total

    async def stream_reader(self, reader: _Reader, length: int) -> AsyncIterator[memoryview]:
        """Yield ``length`` bytes from ``reader`` (already positioned), one read ahead.

        Read into pooled buffers (:class:`.BufferPool`): a fresh bytes object per chunk cost
        more page faults, zeroing and unmapping than the read's copy.
        """
        loop = asyncio.get_running_loop()
        pool = BufferPool(READ_CHUNK, READ_KEEP)

        def read(n: int) -> memoryview:
            buf = pool.take(n)
            return buf[: reader.readinto(buf)]

        remaining = length
        pending: asyncio.Future[memoryview] | None = None
        try:
            if remaining > 0:
                pending = loop.run_in_executor(self.executor, read, min(READ_CHUNK, remaining))
            while pending is not None:
                data = await pending
                pending = None
                if not data:
                    raise OSError(f"blob ended {remaining} bytes early")
                remaining -= data.nbytes
                if remaining > 0:
                    pending = loop.run_in_executor(
                        self.executor, read, min(READ_CHUNK, remaining)
                    )
                yield data
        finally:
            if pending is not None:
                await asyncio.gather(pending, return_exceptions=True)
            await asyncio.gather(self.run(reader.close), return_exceptions=True)
