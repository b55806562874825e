"""Part numbers no rival shares: a session continuing a shared multipart upload claims them.

Where completion takes any ascending subset of the parts (:attr:`.Bucket.sparse_part_numbers`:
S3, inmemory), rival sessions that continue one multipart upload (two servers handed the same
chunk, each sending whole parts before either closes) must never send the same part number:
the later part would replace the earlier one. So such a session sends only under numbers it
*claimed*: when it needs a number it has not got, it creates ``<key>~parts~<first>`` with a
conditional create (:meth:`.Bucket.put_if_absent`) holding the range's length. Ranges grow
1, 2, 4, … parts as the session sends more: ``m`` parts cost about ``log2 m + 1`` claims and
leave fewer than ``m`` numbers unused. Completion lists the winner's parts only (its state
names them); the store drops the rest.

The claims of one write form a *chain*, each starting where one before it ends. A session
starts at the write's *chain point* (past every claim its state knows; past the last saved
part when none) and a claim that fails is a rival's: it is read for its length and skipped.
Every claim made thus starts at the tip of the chain, so no two overlap; a continuation starts
at the point the winner saved, past the winner's claims and before any loser's, so it never
shares a number with a loser that is still sending.

:attr:`.Bucket.max_parts` itself (S3: 10,000) is nobody's: completion sends the final short
part under it, so a committing session shares no number either. A chain that reaches it has
no numbers left: :class:`PartNumbersExhaustedError`, never a reused number.

A session that starts its own multipart upload shares nothing and numbers its parts in order.
The claims a write knows are listed in its state and deleted with it at commit and cancel; a
loser's claims past the winner's are known to no one and stay until their directory is deleted
(the registry deletes an upload's directory when the upload ends).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..errors import (
    PartNumbersExhaustedError,
    PathNotFoundError,
    StorageDriverError,
    UnsupportedMethodError,
    WriteConflictError,
)

if TYPE_CHECKING:
    from .bucket import Bucket

#: Infix of a claim object: ``<key>~parts~<first>`` (``~`` keeps it outside the path grammar).
CLAIM_INFIX = "~parts~"
MAGIC = b"layerstore-parts/1\n"

#: A claimed range of part numbers: ``(first, count)``.
Claim = tuple[int, int]


def claim_key(key: str, first: int) -> str:
    """The claim object of the range of part numbers starting at ``first``."""
    return f"{key}{CLAIM_INFIX}{first}"


def claim(bucket: Bucket, key: str, first: int, count: int) -> bool:
    """Claim ``count`` part numbers from ``first``; False: a rival's claim starts there.

    A bucket without conditional writes cannot claim: the range is taken unclaimed.
    """
    try:
        return bucket.put_if_absent(claim_key(key, first), MAGIC + str(count).encode())
    except UnsupportedMethodError:
        return True


def claimed_count(bucket: Bucket, key: str, first: int, path: str) -> int | None:
    """The length of the claim starting at ``first``, or None when it is gone."""
    try:
        stream = bucket.get(claim_key(key, first))
    except PathNotFoundError:
        return None
    try:
        raw = stream.read()
    finally:
        stream.close()
    try:
        if not raw.startswith(MAGIC):
            raise ValueError("not a layerstore part claim")
        count = int(raw[len(MAGIC) :])
        if count < 1:
            raise ValueError(f"claims {count} part numbers")
    except ValueError as exc:
        raise StorageDriverError(f"unreadable part claim: {exc}", path=path) from exc
    return count


def claim_keys(key: str, claims: Iterable[Claim]) -> list[str]:
    """The claim objects of a write to ``key`` (deleted with its state)."""
    return [claim_key(key, first) for first, _ in claims]


def last_number(bucket: Bucket) -> int:
    """The highest number a whole part may take (sparse stores keep the last for the final)."""
    return bucket.max_parts - 1 if bucket.sparse_part_numbers else bucket.max_parts


class PartNumbers:
    """The part numbers one writer session sends under, claimed where its upload is shared.

    ``last_part`` is the highest number the resumed state holds (0 for none); ``shared``: the
    session continues a multipart upload a rival may continue too; ``claims``: what the
    state lists.
    """

    def __init__(
        self,
        bucket: Bucket,
        key: str,
        path: str,
        *,
        last_part: int = 0,
        shared: bool = False,
        claims: Sequence[Claim] = (),
    ) -> None:
        self._bucket = bucket
        self._key = key
        self._path = path
        self._limit = last_number(bucket)
        #: Every claim of the write this session knows: its state's, its own, rivals' it met.
        self.claims: list[Claim] = list(claims)
        self._shared = shared and bucket.sparse_part_numbers
        self._next = last_part + 1
        #: End (exclusive) of the numbers this session owns: none yet when shared.
        self._end = self._next if self._shared else self._limit + 1
        self._point = max([self._next, *(first + count for first, count in self.claims)])
        self._size = 1

    @property
    def upcoming(self) -> int:
        """The number :meth:`take` returns next, where the session's numbers run in order."""
        return self._next

    def take(self) -> int:
        """The next number this session owns, claiming a range when it has none left."""
        if self._next >= self._end:
            if not self._shared:
                raise self._exhausted()
            self._claim()
        number = self._next
        self._next += 1
        return number

    def _claim(self) -> None:
        while True:
            first = self._point
            if first > self._limit:
                raise self._exhausted()
            count = min(self._size, self._limit - first + 1)
            if claim(self._bucket, self._key, first, count):
                self.claims.append((first, count))
                self._next, self._end, self._point = first, first + count, first + count
                self._size *= 2
                return
            theirs = claimed_count(self._bucket, self._key, first, self._path)
            if theirs is None:  # claims are deleted only when the write ends
                raise WriteConflictError(
                    "another writer finished or cancelled this write", path=self._path
                )
            self.claims.append((first, theirs))
            self._point = first + theirs

    def _exhausted(self) -> PartNumbersExhaustedError:
        return PartNumbersExhaustedError(
            f"the write has used every part number the store allows ({self._bucket.max_parts});"
            " a larger chunksize takes more bytes per part",
            path=self._path,
        )
