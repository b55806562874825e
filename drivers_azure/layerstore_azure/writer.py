"""The ``azure`` writer: a block blob built from staged blocks that any process can resume.

How a write is laid out in Azure
    Each block's id is 12 ASCII digits: the block's index in the blob (6) and the writer
    *session* that staged it (6); the SDK base64-encodes it on the wire (16 characters). Every
    id therefore has the same length, as Azure requires within one blob. ``close()`` stages
    what is buffered and leaves the blocks uncommitted. ``writer(path, append=True)``, in any
    process, reads the block list (Get Block List, ``all``) and rebuilds the write from the
    ids alone: the committed blocks, then for each next index the staged block of the newest
    session that is not older than its predecessor's. A block staged in parallel past a
    failed one is thus never picked up: the session that resumes restages the failed index
    with a newer session number, which cuts the chain at the orphan (see
    :func:`resume_chain`). ``commit()`` commits that list (Put Block List), which also drops
    every other uncommitted block.

Fresh writes, cancel and discarding blocks
    Azure cannot delete single uncommitted blocks; committing a block list discards all the
    others. So ``writer(path, append=False)`` starts by committing an empty list — the path
    becomes an empty blob (as Distribution's azure driver and the filesystem driver truncate on
    open) and stale blocks of an abandoned write are gone. ``cancel()`` commits an empty list and
    deletes the blob, as Distribution's azure driver deletes it. Appending to committed content
    reuses its committed block list; content without our block ids (a single-shot ``put_content``
    upload, another tool's blocks) is first restaged as our blocks, one block of memory at a
    time, and committed unchanged. An append blob — how Distribution's azure driver stores an
    upload in progress — is continued with Append Block (:class:`AppendBlobWriter`), so a
    mixed fleet can finish it; a fresh write replaces it with a block blob.

Block sizes and the 50,000-block limit
    A committed blob holds at most 50,000 blocks; a block may hold up to 4000 MiB and blocks may
    differ in size. Block ``i`` holds up to ``chunksize << (i // 10_000)`` bytes (capped at
    4000 MiB): with the default 4 MiB, blocks 0-9,999 are 4 MiB (39 GiB in all), then 8, 16, 32
    and 64 MiB per tier — 1.2 TiB in 50,000 blocks, and a 300 GiB blob ends in 32 MiB blocks.
    Each ``close()`` may add one short block, which only moves the tiers earlier. Past the
    limit, writing raises a clear error instead of failing at commit.

Memory
    With ``maxconcurrency: 1`` (the default) a full block is staged inline before the next
    one fills, so a writer holds one block. With N > 1, up to N full blocks are staged in
    parallel while the next fills: at most N + 1 blocks.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import cast

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobClient, BlobProperties, BlobType

from layerstore_core.driver import FileWriter
from layerstore_core.errors import StorageDriverError

from .config import MAX_BLOCK_SIZE
from .errors import error_code, translated

log = logging.getLogger(__name__)

#: Azure's limit on committed blocks in one blob.
MAX_BLOCKS = 50_000
#: Blocks per size tier: block ``i`` may hold ``chunksize << (i // TIER_BLOCKS)`` bytes.
TIER_BLOCKS = 10_000
_INDEX_DIGITS = 6
_SESSION_DIGITS = 6
MAX_SESSION = 10**_SESSION_DIGITS - 1
#: Length of every block id we stage, as the SDK takes it (it sends the base64 of it).
BLOCK_ID_LENGTH = _INDEX_DIGITS + _SESSION_DIGITS


@dataclasses.dataclass(frozen=True)
class Block:
    """One block of a write: its place in the blob, the session that staged it, its size."""

    index: int
    session: int
    size: int

    @property
    def id(self) -> str:
        """The block id as the SDK takes it (fixed length; base64-encoded on the wire)."""
        return f"{self.index:0{_INDEX_DIGITS}d}{self.session:0{_SESSION_DIGITS}d}"


def block_size(index: int, chunksize: int) -> int:
    """The size block ``index`` fills up to before it is staged (see the module docstring)."""
    return min(chunksize << (index // TIER_BLOCKS), MAX_BLOCK_SIZE)


def parse_block(block: BlobBlock) -> Block | None:
    """Our Block for an id we staged, or None for anyone else's id."""
    raw = str(block.id)
    if len(raw) != BLOCK_ID_LENGTH or not (raw.isascii() and raw.isdigit()):
        return None
    return Block(int(raw[:_INDEX_DIGITS]), int(raw[_INDEX_DIGITS:]), int(block.size or 0))


def committed_chain(committed: Sequence[BlobBlock]) -> list[Block] | None:
    """Our blocks of committed content in order, or None if the list is not ours (0, 1, ...)."""
    chain = [parse_block(b) for b in committed]
    if any(b is None or b.index != i for i, b in enumerate(chain)):
        return None
    return [b for b in chain if b is not None]


def resume_chain(base: list[Block], uncommitted: Iterable[BlobBlock]) -> list[Block]:
    """The blocks of the unfinished write: ``base`` then the staged blocks that continue it.

    For each next index, take the staged block of the newest session, if that session is not
    older than the previous block's. Sessions only grow, and a session restages from the end of
    the chain it found, so an orphan (staged after a block that failed) is always older than
    the block that later fills the gap before it.
    """
    staged: dict[int, Block] = {}
    for b in filter(None, map(parse_block, uncommitted)):
        if b.index not in staged or b.session > staged[b.index].session:
            staged[b.index] = b
    chain = list(base)
    while True:
        nxt = staged.get(len(chain))
        if nxt is None or (chain and nxt.session < chain[-1].session):
            return chain
        chain.append(nxt)


def next_session(blocks: Iterable[BlobBlock]) -> int:
    """A session number newer than every block of ours at the path."""
    sessions = [b.session for b in filter(None, map(parse_block, blocks))]
    session = max(sessions, default=0) + 1
    if session > MAX_SESSION:
        raise StorageDriverError("too many resumed sessions on this blob; start the write afresh")
    return session


def open_writer(
    blob: BlobClient, driver: str, path: str, append: bool, chunksize: int, maxconcurrency: int
) -> FileWriter:
    """A fresh writer (truncating the path), or the continuation of what is at the path."""

    def make(chain: list[Block], session: int) -> AzureWriter:
        return AzureWriter(blob, driver, path, chain, session, chunksize, maxconcurrency)

    with translated(path):
        if not append:
            _truncate(blob)
            return make([], 1)
        try:
            committed, uncommitted = blob.get_block_list("all")
        except HttpResponseError as exc:
            if error_code(exc) != "InvalidBlobType":
                raise
            return _continue_append_blob(blob, driver, path, chunksize)
        base = committed_chain(committed)
        if not committed or base is None:
            props = _properties(blob)
            if props is not None and props.size:  # a single-shot upload or another tool's blocks
                base = _restage(blob, props, chunksize)
                committed = [BlobBlock(b.id) for b in base]
        chain = resume_chain(base or [], uncommitted)
        return make(chain, next_session([*committed, *uncommitted]))


def _properties(blob: BlobClient) -> BlobProperties | None:
    """The blob's properties, or None while it only has staged blocks (nothing committed yet)."""
    try:
        return blob.get_blob_properties()
    except ResourceNotFoundError:
        return None


def _truncate(blob: BlobClient) -> None:
    """Make the path an empty block blob, dropping staged blocks (or an append blob)."""
    try:
        blob.commit_block_list([])
    except HttpResponseError as exc:
        if error_code(exc) != "InvalidBlobType":
            raise
        blob.delete_blob()
        blob.commit_block_list([])


def _restage(blob: BlobClient, props: BlobProperties, chunksize: int) -> list[Block]:
    """Rewrite content lacking our block ids as our blocks (session 0), unchanged, committed."""
    log.info("restaging %d bytes of %s as blocks to append to it", props.size, blob.blob_name)
    chain: list[Block] = []
    offset = 0
    while offset < props.size:
        length = min(block_size(len(chain), chunksize), props.size - offset)
        data = blob.download_blob(offset=offset, length=length).readall()
        block = Block(len(chain), 0, len(data))
        blob.stage_block(block.id, data, length=len(data))
        chain.append(block)
        offset += len(data)
    blob.commit_block_list(  # fails rather than clobber content that changed meanwhile
        [BlobBlock(b.id) for b in chain],
        content_settings=props.content_settings,
        etag=props.etag,
        match_condition=MatchConditions.IfNotModified,
    )
    return chain


class AzureWriter(FileWriter):
    """Streams into staged blocks; see the module docstring for the layout and the limits."""

    def __init__(
        self,
        blob: BlobClient,
        driver: str,
        path: str,
        chain: list[Block],
        session: int,
        chunksize: int,
        maxconcurrency: int,
    ) -> None:
        super().__init__(driver, path, sum(b.size for b in chain))
        self._blob = blob
        self._chain = chain
        self._session = session
        self._chunksize = chunksize
        self._maxconcurrency = maxconcurrency
        # The block being filled, allocated at its full size once (growing a bytearray by
        # appends reallocates and copies); ``_filled`` bytes of it are data.
        self._buffer = bytearray()
        self._filled = 0
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: collections.deque[Future[None]] = collections.deque()
        self._failure: BaseException | None = None

    @property
    def block_ids(self) -> list[str]:
        """Ids of the blocks written so far, in blob order (for tests and diagnostics)."""
        return [b.id for b in self._chain]

    # -- hooks --------------------------------------------------------------------------------

    def _write(self, data: memoryview) -> None:
        self._check_failure()
        pos = 0
        while pos < data.nbytes:
            if not self._buffer:
                self._buffer = bytearray(block_size(len(self._chain), self._chunksize))
            n = min(len(self._buffer) - self._filled, data.nbytes - pos)
            self._buffer[self._filled : self._filled + n] = data[pos : pos + n]
            self._filled += n
            pos += n
            if self._filled == len(self._buffer):
                self._stage_buffer()

    def _close(self) -> None:
        try:
            self._flush()
        finally:
            self._shutdown()

    def _commit(self) -> None:
        try:
            self._flush()
            with translated(self.path):
                self._blob.commit_block_list([BlobBlock(b.id) for b in self._chain])
        finally:
            self._shutdown()

    def _cancel(self) -> None:
        """Drop the staged blocks (commit an empty list), then delete the blob."""
        self._buffer, self._filled = bytearray(), 0
        for future in self._inflight:
            future.cancel()
        self._shutdown()
        with translated(self.path):
            self._blob.commit_block_list([])
            try:
                self._blob.delete_blob()
            except ResourceNotFoundError:
                pass

    def _release(self) -> None:
        """Drop the buffer and wait out blocks in flight (they are staged, harmless)."""
        self._buffer, self._filled = bytearray(), 0
        self._shutdown()

    # -- staging ------------------------------------------------------------------------------

    def _flush(self) -> None:
        self._check_failure()
        if self._filled:
            self._stage_buffer()
        self._drain(0)

    def _stage_buffer(self) -> None:
        if len(self._chain) >= MAX_BLOCKS:
            raise StorageDriverError(
                f"write exceeds Azure's {MAX_BLOCKS}-block limit; raise chunksize", path=self.path
            )
        block = Block(len(self._chain), self._session, self._filled)
        data = memoryview(self._buffer)[: self._filled]
        self._buffer, self._filled = bytearray(), 0
        self._chain.append(block)
        if self._maxconcurrency == 1:
            self._stage(block, data)
            return
        self._drain(self._maxconcurrency - 1)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._maxconcurrency, thread_name_prefix="azure-stage")
        self._inflight.append(self._pool.submit(self._stage, block, data))

    def _stage(self, block: Block, data: memoryview) -> None:
        with translated(self.path):
            # The SDK sends any buffer; bytes() would copy a whole block for the type checker.
            self._blob.stage_block(block.id, cast(bytes, data), length=len(data))

    def _drain(self, keep: int) -> None:
        """Wait until at most ``keep`` stages are in flight; the first failure sticks."""
        while len(self._inflight) > keep:
            try:
                self._inflight.popleft().result()
            except BaseException as exc:
                self._failure = exc
                raise

    def _check_failure(self) -> None:
        if self._failure is not None:
            raise StorageDriverError(
                "an earlier block failed to stage; resume with writer(path, append=True)",
                path=self.path,
            ) from self._failure

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._inflight.clear()


# -- append blobs: uploads a Distribution registry left behind ------------------------------

#: Largest Append Block that every service version takes.
MAX_APPEND_SIZE = 4 * 2**20


def _continue_append_blob(blob: BlobClient, driver: str, path: str, chunksize: int) -> FileWriter:
    """Continue an append blob (Distribution's azure driver writes uploads as append blobs)."""
    props = blob.get_blob_properties()
    if props.blob_type != BlobType.APPENDBLOB:
        raise StorageDriverError(f"cannot append to a {props.blob_type}", path=path)
    return AppendBlobWriter(blob, driver, path, props.size, min(chunksize, MAX_APPEND_SIZE))


class AppendBlobWriter(FileWriter):
    """Appends to an existing append blob at its size, so a mixed fleet can finish an upload.

    Each Append Block carries the offset it expects (``appendpos``), so a retried append that
    had already landed is recognised instead of written twice. The blob caps at 50,000
    appends; Distribution's writer has the same limit. Memory: one append (``<= 4 MiB``).
    """

    def __init__(self, blob: BlobClient, driver: str, path: str, size: int, piece: int) -> None:
        super().__init__(driver, path, size)
        self._blob = blob
        self._piece = piece
        self._stored = size
        self._buffer = bytearray()

    def _write(self, data: memoryview) -> None:
        self._buffer += data
        while len(self._buffer) >= self._piece:
            self._append(self._piece)

    def _close(self) -> None:
        while self._buffer:
            self._append(min(len(self._buffer), self._piece))

    def _commit(self) -> None:
        """The bytes are in place once appended: committing is flushing."""
        self._close()

    def _cancel(self) -> None:
        self._buffer = bytearray()
        with translated(self.path):
            try:
                self._blob.delete_blob()
            except ResourceNotFoundError:
                pass

    def _release(self) -> None:
        self._buffer = bytearray()

    def _append(self, n: int) -> None:
        piece = bytes(self._buffer[:n])
        with translated(self.path):
            try:
                self._blob.append_block(piece, length=n, appendpos_condition=self._stored)
            except HttpResponseError as exc:
                landed = self._blob.get_blob_properties().size == self._stored + n
                if error_code(exc) != "AppendPositionConditionNotMet" or not landed:
                    raise
        self._stored += n
        del self._buffer[:n]
