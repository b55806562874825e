"""Our block ids: how a write is laid out in staged blocks that any process can resume.

Each block's id is 12 ASCII digits: the block's index in the blob (6) and the writer *session*
that staged it (6); the SDK base64-encodes it on the wire (16 characters). Every id therefore
has the same length, as Azure requires within one blob. A multipart upload's id is its
session number; part ``n`` is block index ``n - 1``.

A resume rebuilds the write from the block list alone (Get Block List, ``all``): for each next
index, the block of the newest session that is not older than its predecessor's, committed or
staged (:func:`resume_chain`). Sessions only grow, and a session stages from the end of the
chain it found (a fresh write from index 0), so a block staged past a failed one, or a stale
block of an abandoned write, is always older than the block that later takes its place.

Block ``i`` holds up to ``chunksize << (i // 10_000)`` bytes (capped at 4000 MiB): with the
default 4 MiB, blocks 0-9,999 are 4 MiB (39 GiB in all), then 8, 16, 32 and 64 MiB per tier —
1.2 TiB in 50,000 blocks. Each ``close()`` may add one short block, which only moves the tiers
earlier.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from azure.storage.blob import BlobBlock

from layerstore_core.errors import StorageDriverError

from .config import MAX_BLOCK_SIZE

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


def resume_chain(blocks: Iterable[BlobBlock]) -> list[Block]:
    """The blocks of the unfinished write at a blob, from all its blocks (ids not ours ignored).

    For each next index, take the block of the newest session there, if that session is not
    older than the previous block's (see the module docstring).
    """
    newest: dict[int, Block] = {}
    for b in filter(None, map(parse_block, blocks)):
        if b.index not in newest or b.session > newest[b.index].session:
            newest[b.index] = b
    chain: list[Block] = []
    while True:
        nxt = newest.get(len(chain))
        if nxt is None or (chain and nxt.session < chain[-1].session):
            return chain
        chain.append(nxt)


def next_session(blocks: Iterable[BlobBlock]) -> int:
    """A session number newer than every block of ours at the blob."""
    sessions = [b.session for b in filter(None, map(parse_block, blocks))]
    session = max(sessions, default=0) + 1
    if session > MAX_SESSION:
        raise StorageDriverError("too many resumed sessions on this blob; start the write afresh")
    return session
