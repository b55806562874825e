"""Our block ids: how a write is laid out in staged blocks that any process can resume.

Each block's id is 12 ASCII characters: the block's index in the blob (6 digits) and the writer
*session* that staged it (6 random lowercase letters, :func:`new_session`); the SDK
base64-encodes it on the wire (16 characters). Every id has the same length, as Azure requires
within one blob. A multipart upload's id is its session; part ``n`` is block index ``n - 1``.
Rival sessions never share an id, so the loser's blocks never replace the winner's. Writes of
earlier versions numbered their sessions (6 digits, newer is larger); those are still resumed.

A resume rebuilds the write from the block list (Get Block List, ``all``) and the write's
one-writer fences (one listing, :mod:`layerstore_core.objectstore.fence`): the fence of the
advance from offset ``X`` names the session that won it (:func:`fence_metadata`), and
:func:`write_chain` follows, from offset 0, the committed blocks (a committed write being
continued; not when a fence from 0 of another session says a fresh write replaced it), then at
each fenced offset the winner's blocks from there. A session's blocks that no fence names (a
loser's, or those of a writer that failed before its ``close()``) are never resumed; only
numbered sessions of older versions continue unfenced: at each next index, the newest one not
older than its predecessor.

Block ``i`` holds up to ``chunksize << (i // 10_000)`` bytes (capped at 4000 MiB): with the
default 4 MiB, blocks 0-9,999 are 4 MiB (39 GiB in all), then 8, 16, 32 and 64 MiB per tier —
1.2 TiB in 50,000 blocks. Each ``close()`` may add one short block, which only moves the tiers
earlier.
"""

from __future__ import annotations

import dataclasses
import secrets
import string
from collections.abc import Iterable, Mapping

from azure.storage.blob import BlobBlock

from layerstore_core.objectstore import fence

from .config import MAX_BLOCK_SIZE

#: Azure's limit on committed blocks in one blob.
MAX_BLOCKS = 50_000
#: Blocks per size tier: block ``i`` may hold ``chunksize << (i // TIER_BLOCKS)`` bytes.
TIER_BLOCKS = 10_000
_INDEX_DIGITS = 6
SESSION_LENGTH = 6
#: Length of every block id we stage, as the SDK takes it (it sends the base64 of it).
BLOCK_ID_LENGTH = _INDEX_DIGITS + SESSION_LENGTH
_LETTERS = string.ascii_lowercase
#: Metadata of a fence blob: the session that won the advance, and its last part's number.
FENCE_SESSION = "session"
FENCE_PART = "part"


@dataclasses.dataclass(frozen=True)
class Block:
    """One block of a write: its place in the blob, the session that staged it, its size."""

    index: int
    session: str
    size: int

    @property
    def id(self) -> str:
        """The block id as the SDK takes it (fixed length; base64-encoded on the wire)."""
        return f"{self.index:0{_INDEX_DIGITS}d}{self.session}"

    @property
    def numbered(self) -> bool:
        """A session of an older version (6 digits, ordered), not a random token."""
        return self.session.isdigit()


@dataclasses.dataclass(frozen=True)
class Fence:
    """The winner of one advance: its session, and the number of the part it closed at.

    The winner's blocks run from the chain's next index to block ``part - 1`` (its tail).
    """

    session: str
    part: int


def new_session() -> str:
    """A random session token (26**6 of them: two rivals share one with odds of 3e-9)."""
    return "".join(secrets.choice(_LETTERS) for _ in range(SESSION_LENGTH))


def session_of(upload_id: str) -> str:
    """The session an upload id names; an older version's numbered one ("3") is zero-padded."""
    return upload_id.zfill(SESSION_LENGTH) if upload_id.isdigit() else upload_id


def is_session(session: str) -> bool:
    """Whether ``session`` is one of ours: a token, or a numbered session of an older version."""
    return len(session) == SESSION_LENGTH and session.isascii() and (
        session.isdigit() or (session.isalpha() and session.islower())
    )


def block_size(index: int, chunksize: int) -> int:
    """The size block ``index`` fills up to before it is staged (see the module docstring)."""
    return min(chunksize << (index // TIER_BLOCKS), MAX_BLOCK_SIZE)


def parse_block(block: BlobBlock) -> Block | None:
    """Our Block for an id we staged, or None for anyone else's id."""
    raw = str(block.id)
    index, session = raw[:_INDEX_DIGITS], raw[_INDEX_DIGITS:]
    if len(raw) != BLOCK_ID_LENGTH or not (index.isascii() and index.isdigit()):
        return None
    if not is_session(session):
        return None
    return Block(int(index), session, int(block.size or 0))


def fence_metadata(raw: bytes, key: str) -> dict[str, str]:
    """The metadata a fence blob carries, so a listing tells the winners without reading them."""
    session, part, _ = fence.decode_part(raw, key)
    return {FENCE_SESSION: session, FENCE_PART: str(part)}


def parse_fence(metadata: Mapping[str, str] | None) -> Fence | None:
    """The winner a fence's metadata names, or None (a fence of an older version: read it)."""
    if not metadata or FENCE_SESSION not in metadata or FENCE_PART not in metadata:
        return None
    return parse_fence_content(metadata[FENCE_SESSION], metadata[FENCE_PART])


def parse_fence_content(session: str, part: str | int) -> Fence | None:
    """A Fence from its session and part number; None when they are not ours."""
    session = session_of(session)
    if not is_session(session):
        return None
    try:
        return Fence(session, int(part))
    except ValueError:
        return None


def write_chain(
    committed: Iterable[BlobBlock], staged: Iterable[BlobBlock], fences: Mapping[int, Fence]
) -> list[Block]:
    """The blocks of the write at a blob, in order (see the module docstring).

    ``fences`` maps each fenced offset to the winner of the advance from it.
    """
    base = [parse_block(b) for b in committed]
    blocks: dict[tuple[int, str], Block] = {}
    numbered: dict[int, list[Block]] = {}
    for b in filter(None, [*base, *map(parse_block, staged)]):
        blocks[(b.index, b.session)] = b
        if b.numbered:
            numbered.setdefault(b.index, []).append(b)
    chain: list[Block] = []
    if all(b is not None and b.index == i for i, b in enumerate(base)):
        ours = [b for b in base if b is not None]
        # A fence from 0 of another session than the first committed block's: a fresh write
        # replaced the content (one of its own: a commit that died before clearing its fences).
        if not ours or 0 not in fences or fences[0].session == ours[0].session:
            chain = ours
    offset = sum(b.size for b in chain)
    run: Fence | None = None
    while True:
        index = len(chain)
        if offset in fences:
            run = fences[offset]
        elif run is not None and index >= run.part:
            run = None  # the winner's blocks end at its tail; an unfenced offset follows
        if run is not None:
            nxt = blocks.get((index, run.session)) if index < run.part else None
        else:
            nxt = _numbered_next(numbered.get(index, []), chain[-1] if chain else None)
        if nxt is None:
            return chain
        chain.append(nxt)
        offset += nxt.size


def _numbered_next(candidates: Iterable[Block], previous: Block | None) -> Block | None:
    """An older version's unfenced continuation: the newest numbered session not older."""
    if previous is not None and not previous.numbered:
        return None
    floor = int(previous.session) if previous is not None else 0
    found = [b for b in candidates if int(b.session) >= floor]
    return max(found, key=lambda b: int(b.session), default=None)
