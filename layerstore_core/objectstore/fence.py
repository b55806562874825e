"""One writer per unfinished write: each ``close()`` advances the write from an offset once.

Rival writers that resumed one write from the same saved state (two requests carrying the same
chunk, sent at once to two servers) must not both be accepted. A close that saves state ``Y``
after resuming at offset ``X`` first *claims* the advance from ``X``: it creates the *fence
object* ``<key>~from~<X>`` with a conditional create (:meth:`.Bucket.put_if_absent`), holding
the state ``Y`` itself, and only then overwrites the state object. Of rivals from ``X``
exactly one creates the fence; the others get :class:`WriteConflictError` and store nothing.
A write that found no state object (a fresh one, ``X`` = 0) claims by creating the state object
itself with the same conditional create (:func:`claim_key`): one request, and nothing to roll
forward, as that state is either complete or absent.

No liveness is involved: a writer killed before its fence leaves nothing, so the client's retry
from ``X`` proceeds at once; one killed between its fence and its state write left a complete
state ``Y`` in the fence, and the loser that finds it rolls the state object forward to it
(``PartWriter`` on losing), so the next status request reports ``Y``. A state lists the fences of
its write (``UploadState.fences``), so commit and cancel delete them with the state object,
in the same request.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..errors import (
    PathNotFoundError,
    StorageDriverError,
    UnsupportedMethodError,
    WriteConflictError,
)

if TYPE_CHECKING:
    from .bucket import Bucket

#: Infix of a fence object: ``<key>~from~<offset>`` (``~`` keeps it outside the path grammar).
FENCE_INFIX = "~from~"
PART_MAGIC = b"layerstore-fence-part/1\n"


def fence_key(key: str, offset: int) -> str:
    """The fence object of the advance of the write at ``key`` from ``offset``."""
    return f"{key}{FENCE_INFIX}{offset}"


def claim(bucket: Bucket, key: str, offset: int, state: bytes) -> bool:
    """Create the fence of the advance from ``offset`` holding ``state``; False: a rival has.

    A bucket without conditional writes cannot fence: the advance is taken unfenced.
    """
    try:
        return bucket.put_if_absent(fence_key(key, offset), state)
    except UnsupportedMethodError:
        return True


def claim_key(bucket: Bucket, key: str, data: bytes) -> bool:
    """Create ``key`` holding ``data`` unless it exists; False: a rival has.

    A write that found no state claims offset 0 with its state object itself (nothing to roll
    forward: the state is complete or absent). Without conditional writes: a plain put.
    """
    try:
        return bucket.put_if_absent(key, data)
    except UnsupportedMethodError:
        bucket.put(key, data)
        return True


def read_fence(bucket: Bucket, key: str, offset: int) -> bytes | None:
    """The state the winning advance from ``offset`` saved, or None (committed or cancelled)."""
    try:
        stream = bucket.get(fence_key(key, offset))
    except PathNotFoundError:
        return None
    try:
        return stream.read()
    finally:
        stream.close()


def clear(bucket: Bucket, key: str) -> None:
    """Delete every fence of the write at ``key`` (stores whose writes keep no state to list them).

    One listing: a fresh write clears an abandoned write's fences, commit and cancel their own,
    deleting them :attr:`.Bucket.delete_batch` at a time (a listing page may hold more).
    """
    prefix = key + FENCE_INFIX
    token: str | None = None
    while True:
        page = bucket.list_page(prefix, delimiter=False, token=token)
        keys = [o.key for o in page.objects]
        for start in range(0, len(keys), bucket.delete_batch):
            bucket.delete_many(keys[start : start + bucket.delete_batch])
        token = page.token
        if token is None:
            return


def encode_part(upload_id: str, number: int, data: bytes) -> bytes:
    """A fence for stores without state objects: the tail part the winner stages next."""
    head = json.dumps({"upload": upload_id, "part": number}, separators=(",", ":"))
    return PART_MAGIC + head.encode() + b"\n" + data


def decode_part(raw: bytes, path: str) -> tuple[str, int, bytes]:
    """The upload id, part number and bytes of a fence :func:`encode_part` made."""
    try:
        if not raw.startswith(PART_MAGIC):
            raise ValueError("not a layerstore fence")
        line, _, data = raw[len(PART_MAGIC) :].partition(b"\n")
        meta = json.loads(line)
        return str(meta["upload"]), int(meta["part"]), data
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageDriverError(f"unreadable fence: {exc}", path=path) from exc


def conflict(path: str, offset: int) -> WriteConflictError:
    """The error a losing writer raises."""
    return WriteConflictError(
        f"another writer continued this write from offset {offset} first", path=path
    )
