"""Conformance: claimed part numbers — rivals sending whole parts never share a part number.

For object-store drivers whose multipart completion takes any ascending subset of the parts
(:attr:`~layerstore_core.objectstore.Bucket.sparse_part_numbers`: S3, inmemory), sessions that
continue one multipart upload send under part numbers they claimed
(:mod:`layerstore_core.objectstore.partclaims`). Rivals that each send whole parts with
different bytes (in any interleaving, a loser still sending after the winner closed and a
later session continued) leave the winner's bytes exactly; a write whose numbers a rival
holds to the end gets :class:`PartNumbersExhaustedError` and stays as it was.
"""

from __future__ import annotations

from ..driver import FileWriter, StorageDriver
from ..errors import PartNumbersExhaustedError, WriteConflictError
from ..objectstore import Bucket, ObjectStoreDriver, partclaims
from ._base import SuiteBase, payload, raises, under


def _bucket(driver: StorageDriver) -> Bucket:
    assert isinstance(driver, ObjectStoreDriver), "ClaimedPartCases is for object-store drivers"
    bucket: Bucket = driver.bucket
    assert bucket.sparse_part_numbers, "ClaimedPartCases is for stores with sparse part numbers"
    return bucket


def _closes(*writers: FileWriter) -> list[bool]:
    """Close each writer in turn; whether each got through without a conflict."""
    outcome = []
    for writer in writers:
        try:
            writer.close()
            outcome.append(True)
        except WriteConflictError:
            outcome.append(False)
    return outcome


class ClaimedPartCases(SuiteBase):
    """Rivals continuing one multipart upload, each with whole parts: the winner's bytes only."""

    def _with_one_part(self, driver: StorageDriver, path: str) -> tuple[bytes, int]:
        """A write holding one whole part and a short tail, closed; and the part size."""
        part = _bucket(driver).part_size(1)
        base = payload(part + 7, seed=1)
        with driver.writer(path) as writer:
            writer.write(base)
        return base, part

    def _continued_and_committed(self, driver: StorageDriver, path: str, expected: bytes) -> None:
        writer = driver.writer(path, append=True)
        assert writer.size == len(expected)
        writer.write(b"-tail")
        writer.commit()
        assert driver.get_content(path) == expected + b"-tail"

    def test_rivals_interleaving_whole_parts(self, driver: StorageDriver, root: str) -> None:
        """Rivals' parts interleaved (their claimed ranges grow at different rates)."""
        path = under(root, "upload")
        base, part = self._with_one_part(driver, path)
        first, second = driver.writer(path, append=True), driver.writer(path, append=True)
        mine = [payload(part, seed=2), payload(2 * part + 5, seed=3)]
        theirs = [payload(3 * part, seed=4), payload(part + 9, seed=5)]
        first.write(mine[0])
        second.write(theirs[0])
        first.write(mine[1])
        second.write(theirs[1])
        outcome = _closes(second, first)
        assert outcome.count(True) == 1, outcome
        won = b"".join(theirs if outcome[0] else mine)
        self._continued_and_committed(driver, path, base + won)

    def test_loser_sending_after_a_continuation(self, driver: StorageDriver, root: str) -> None:
        """The winner closes, a later session continues it, and the loser sends on meanwhile."""
        path = under(root, "upload")
        base, part = self._with_one_part(driver, path)
        winner, loser = driver.writer(path, append=True), driver.writer(path, append=True)
        won = payload(2 * part + 3, seed=6)
        winner.write(won)
        loser.write(payload(part + 1, seed=7))
        winner.close()
        later = driver.writer(path, append=True)
        assert later.size == len(base + won)
        more = payload(3 * part + 11, seed=8)
        later.write(more[:part])
        loser.write(payload(4 * part, seed=9))
        later.write(more[part:])
        assert _closes(loser, later) == [False, True]
        self._continued_and_committed(driver, path, base + won + more)

    def test_rivals_committing_whole_parts(self, driver: StorageDriver, root: str) -> None:
        """A session that commits (its final part included) shares no number with a rival."""
        path = under(root, "upload")
        base, part = self._with_one_part(driver, path)
        committing, rival = driver.writer(path, append=True), driver.writer(path, append=True)
        mine = payload(2 * part + 13, seed=10)
        committing.write(mine[: 2 * part])  # one part sent, one held back
        rival.write(payload(3 * part + 1, seed=11))  # sent after ours: it must not replace it
        committing.write(mine[2 * part :])
        committing.commit()
        assert driver.get_content(path) == base + mine
        rival.release()  # its parts were never listed: the store dropped them

    def test_part_numbers_exhausted(self, driver: StorageDriver, root: str) -> None:
        """A rival holds every number left: no part is sent under a number it claimed."""
        bucket = _bucket(driver)
        path = under(root, "upload")
        base, part = self._with_one_part(driver, path)
        assert isinstance(driver, ObjectStoreDriver)
        # The rival's claim, as a session that sent thousands of parts would have made it: from
        # the write's chain point (after its one part) to the last number a whole part may take.
        left = partclaims.last_number(bucket) - 1
        assert partclaims.claim(bucket, driver.key(path), 2, left)
        writer = driver.writer(path, append=True)
        with raises(driver, PartNumbersExhaustedError):
            writer.write(payload(part + 1, seed=12))  # a whole part: a number is needed
        writer.release()
        self._continued_and_committed(driver, path, base)
