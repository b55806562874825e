"""Per-process server state and the bridges between the event loop and the synchronous service.

The drivers and the blob service block, so every call into them runs on a thread pool. Request
bodies are batched to :data:`WRITE_BATCH` before each threaded write, with one write in flight
while the next batch arrives (at most two batches in memory per upload); blob reads run one chunk
ahead of the socket. Nothing holds a whole blob.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, TypeVar

from ..ops.scrub import ScrubStats
from ..registry import Registry
from .auth import Htpasswd
from .config import Config
from .http import Request
from .tokenauth import TokenAuthenticator
from .tokens import TokenSigner

_T = TypeVar("_T")


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def close(self) -> None: ...

WRITE_BATCH = 4 * 2**20
READ_CHUNK = 1 * 2**20
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

    async def run(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Call a blocking function on the pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    async def pump(self, request: Request, write: Callable[[bytearray], Any]) -> int:
        """Stream the request body into ``write`` in batches; the number of bytes written."""
        loop = asyncio.get_running_loop()
        pending: asyncio.Future[Any] | None = None
        buf = bytearray()
        total = 0
        try:
            async for chunk in request.stream():
                buf += chunk
                if len(buf) >= WRITE_BATCH:
                    if pending is not None:
                        await pending
                    data, buf = buf, bytearray()
                    pending = loop.run_in_executor(self.executor, write, data)
                    total += len(data)
            if pending is not None:
                await pending
                pending = None
            if buf:
                await self.run(write, buf)
                total += len(buf)
        finally:
            if pending is not None:  # an error while a write runs: let it finish first
                await asyncio.gather(pending, return_exceptions=True)
        return total

    async def stream_reader(self, reader: _Reader, length: int) -> AsyncIterator[bytes]:
        """Yield ``length`` bytes from ``reader`` (already positioned), one read ahead."""
        loop = asyncio.get_running_loop()
        remaining = length
        pending: asyncio.Future[bytes] | None = None
        try:
            if remaining > 0:
                pending = loop.run_in_executor(
                    self.executor, reader.read, min(READ_CHUNK, remaining)
                )
            while pending is not None:
                data = await pending
                pending = None
                if not data:
                    raise OSError(f"blob ended {remaining} bytes early")
                remaining -= len(data)
                if remaining > 0:
                    pending = loop.run_in_executor(
                        self.executor, reader.read, min(READ_CHUNK, remaining)
                    )
                yield data
        finally:
            if pending is not None:
                await asyncio.gather(pending, return_exceptions=True)
            await asyncio.gather(self.run(reader.close), return_exceptions=True)
