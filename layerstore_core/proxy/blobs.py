"""Single-flight blob fetches: upstream → storage and the first client at once, digest-verified.

One fetch per digest per process (a dict of in-flight fetches), and one per fleet (a
:class:`~.cache.Lease` in storage). The request that starts a fetch is served from it as the
bytes arrive; other requests wait for the commit and are served from storage (the fetch links the
blob, the waiter links it into its own repository). The fetch runs as its own task, so a client
that goes away mid-body does not stop it. The upload's commit verifies the digest: a blob whose
bytes do not match is never stored, and the streaming client sees its body cut short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx

from ..registry import Registry
from ..registry import paths as p
from ..registry.descriptor import blob_size, write_link
from ..registry.errors import BlobUnknownError
from .body import Chunk, body_chunks
from .cache import Lease
from .errors import UpstreamError
from .stats import ProxyStats
from .upstream import UpstreamClient

log = logging.getLogger(__name__)

_T = TypeVar("_T")
Run = Callable[..., Awaitable[Any]]

#: Bytes per write to storage and per hand-over to the client: 4 MiB writes took half the time
#: of 1 MiB ones (fewer thread hand-offs, hash/write pairs) on a loaded 2-core machine.
CHUNK = 4 * 2**20
#: Chunks buffered for the streaming client before the fetch waits for it.
QUEUE_CHUNKS = 4
#: A streaming client that takes no chunk for this long is detached from the fetch, seconds.
STALL = 60.0
#: How often a waiter looks at storage while another process holds the lease, seconds.
POLL = 0.2
#: How long a waiter waits for another process's fetch before giving up, seconds.
WAIT_LIMIT = 3600.0


class _End:
    """Marks the end of a fetch's chunk stream (``error`` set when it failed)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class BlobFetcher:
    """Fetch missing blobs from upstreams, at most once at a time per digest."""

    def __init__(self, registry: Registry, run: Run, stats: ProxyStats) -> None:
        self._registry = registry
        self._run = run
        self._stats = stats
        #: digest → the running fetch's outcome (None, or the error it ended with).
        self._inflight: dict[str, asyncio.Future[BaseException | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def link_if_stored(self, name: str, digest: str) -> bool:
        """Link an already stored blob into ``name`` (fetched for another repository)."""
        if blob_size(self._registry.driver, p.path_for(p.BlobDataPath(digest))) is None:
            return False
        write_link(self._registry.driver, p.path_for(p.LayerLinkPath(name, digest)), digest)
        return True

    async def fetch(self, client: UpstreamClient, remote: str, name: str,
                    digest: str) -> tuple[int, Subscriber] | None:
        """Start or join the fetch of ``digest``.

        Returns ``(size, subscriber)`` to the request that started it (which must iterate or
        detach the subscriber), None to one that waited and now finds the blob in storage
        (and linked into ``name``).
        """
        while True:
            running = self._inflight.get(digest)
            if running is not None:
                failed = await asyncio.shield(running)
                if isinstance(failed, BlobUnknownError):  # one failure fails its waiters
                    raise BlobUnknownError(failed.message, detail=failed.detail)
                if failed is not None:
                    raise UpstreamError(f"fetching blob {digest} failed: {failed}")
            elif await self._run(self.link_if_stored, name, digest):
                return None
            else:
                lease = Lease(self._registry.driver, digest)
                if await self._run(lease.try_acquire):
                    return await self._lead(client, remote, name, digest, lease)
                await self._wait_elsewhere(name, digest, lease)
            if await self._run(self.link_if_stored, name, digest):
                return None

    async def _wait_elsewhere(self, name: str, digest: str, lease: Lease) -> None:
        """Another process fetches: poll storage until the blob or the lease's end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_LIMIT
        driver = self._registry.driver
        while loop.time() < deadline:
            await asyncio.sleep(POLL)
            if await self._run(blob_size, driver, p.path_for(p.BlobDataPath(digest))) is not None:
                return
            if not await self._run(lease.held_elsewhere):
                return
        raise UpstreamError(f"blob {digest}: another process's fetch did not finish")

    async def _lead(self, client: UpstreamClient, remote: str, name: str, digest: str,
                    lease: Lease) -> tuple[int, Subscriber]:
        done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = done
        try:
            resp = await self._run(client.request, "GET", remote, f"blobs/{digest}",
                                   {"Accept-Encoding": "identity"})
            if resp.status_code != 200:
                await self._run(resp.close)
                raise BlobUnknownError(f"blob {digest} unknown upstream ({resp.status_code})",
                                       detail={"digest": digest})
        except BaseException as exc:
            self._finish(digest, done, exc)
            await self._run(lease.release)
            raise
        size = int(resp.headers.get("content-length", "-1"))
        queue: asyncio.Queue[Chunk | _End] = asyncio.Queue(QUEUE_CHUNKS)
        reader = Subscriber(queue)
        task = asyncio.create_task(self._copy(resp, name, digest, lease, reader, done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return size, reader

    async def _copy(self, resp: httpx.Response, name: str, digest: str, lease: Lease,
                    reader: Subscriber, done: asyncio.Future[BaseException | None]) -> None:
        """Upstream body → upload (and the subscribed client); commit verifies the digest.

        Pipelined: the next upstream read runs while a chunk is written and the one before it
        handed to the client, so the three overlap. The client's last chunk is held back until
        the written bytes hash to ``digest`` (a mismatch cuts its body short), but not through
        the commit's sync and moves: its response ends while the blob is committed.
        """
        chunks = body_chunks(resp, CHUNK)  # the bytes as stored: no content decoding
        error: BaseException | None = None
        upload = None
        pending: asyncio.Future[Any] | None = None
        held: Chunk = b""
        try:
            upload = await self._run(self._registry.repository(name).blobs.create_upload)
            pending = asyncio.ensure_future(self._run(next, chunks, b""))
            while True:
                chunk = await pending
                pending = None
                if not chunk:
                    break
                pending = asyncio.ensure_future(self._run(next, chunks, b""))
                # uncached: the client gets the bytes from memory; storage need not cache them
                await asyncio.gather(self._run(upload.write, chunk, uncached=True),
                                     reader.put(held))
                held = chunk
                self._stats.add("upstream_bytes", len(chunk))
                if lease.due():  # checked here: no thread hop per chunk for a no-op
                    await self._run(lease.renew)
            if upload.written_digest() == digest:  # a copy of the hash state: cheap
                await reader.put(held)
                await reader.end(None)
            await self._run(upload.commit, digest)
            log.info("cached blob %s for %s", digest, name)
        except BaseException as exc:
            error = exc
            self._stats.add("upstream_errors")
            log.warning("fetch of blob %s for %s failed: %s", digest, name, exc)
            if upload is not None:
                with contextlib.suppress(Exception):
                    await self._run(upload.cancel)
            if not isinstance(exc, Exception):
                raise
        finally:
            if pending is not None:  # a read in flight must end before the response closes
                await asyncio.gather(pending, return_exceptions=True)
            await asyncio.gather(self._run(resp.close), self._run(lease.release),
                                 return_exceptions=True)
            self._finish(digest, done, error)
            await reader.end(error)

    def _finish(self, digest: str, done: asyncio.Future[BaseException | None],
                error: BaseException | None = None) -> None:
        if self._inflight.get(digest) is done:
            del self._inflight[digest]
        if not done.done():
            done.set_result(error)


class Subscriber:
    """The streaming client's side of a fetch; detached when the client goes away."""

    def __init__(self, queue: asyncio.Queue[Chunk | _End]) -> None:
        self._queue = queue
        self.attached = True
        self.ended = False

    async def put(self, chunk: Chunk) -> None:
        """Hand a chunk over; a client that takes none for :data:`STALL` s is detached.

        The fetch serves every waiter, so one stuck or never-started response must not stop it.
        """
        if not self.attached or not chunk:
            return
        try:
            await asyncio.wait_for(self._queue.put(chunk), STALL)
        except TimeoutError:
            log.warning("a client took no bytes of a fetch for %.0f s: detached", STALL)
            self.detach(OSError("client too slow: detached from the upstream fetch"))

    async def end(self, error: BaseException | None) -> None:
        """Send the end marker, once (later calls, e.g. a commit's failure, are dropped)."""
        if self.attached and not self.ended:
            self.ended = True
            await self._queue.put(_End(error))

    def detach(self, error: BaseException | None = None) -> None:
        """Stop taking chunks (the fetch goes on without this client); idempotent.

        With ``error`` the client's iteration, if any, ends with it instead of waiting.
        """
        self.attached = False
        with contextlib.suppress(asyncio.QueueEmpty):  # unblock a fetch waiting on put
            while True:
                self._queue.get_nowait()
        if error is not None:
            self._queue.put_nowait(_End(error))

    async def iterate(self, start: int = 0, length: int | None = None) -> AsyncIterator[Chunk]:
        """The fetch's bytes from ``start``, ``length`` of them (None: to the end).

        A Range on a blob being fetched is served from the fetch as it passes: the bytes
        before ``start`` are read from upstream (and cached) but not sent.
        """
        skip, left = start, length
        try:
            while left is None or left > 0:
                item = await self._queue.get()
                if isinstance(item, _End):
                    if item.error is not None:
                        raise OSError(f"upstream fetch failed: {item.error}")
                    if left:  # the upstream sent fewer bytes than it announced
                        raise OSError("upstream fetch ended before the requested range")
                    return
                if skip >= len(item):
                    skip -= len(item)
                    continue
                view = memoryview(item)[skip:] if skip else memoryview(item)
                skip = 0
                if left is not None:
                    view, left = view[:left], left - min(left, len(view))
                yield bytes(view) if view.nbytes != len(item) else item
        finally:
            self.detach()



