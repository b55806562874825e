"""Conformance: one writer per write — rivals resuming one unfinished write, exactly one wins.

Two writers opened at the same offset of one unfinished write (two servers handed the same
chunk) must not both be accepted: one of them gets :class:`WriteConflictError` from ``write``
or ``close`` (or from ``writer()`` itself, for a fresh write that a rival holds), and the write
stays exactly as the winner left it — a later writer continues it and commits the winner's
bytes. Drivers build it on what the backend offers (locks, conditional writes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from ..driver import FileWriter, StorageDriver, WriterState
from ..errors import PathNotFoundError, WriteConflictError
from ._base import KIB, MIB, SuiteBase, payload, raises, under

#: Larger than every part size the conformance backends use (S3's default ``chunksize``).
WHOLE_PART = 10 * MIB
#: Races run by the threaded case (each is two writers released at once by a barrier).
RACES = 4
BARRIER_TIMEOUT = 120.0


def _attempt(open_writer: Callable[[], FileWriter], data: bytes) -> bool:
    """Open, write and close; False when the driver refused it as a rival's loser."""
    try:
        writer = open_writer()
    except WriteConflictError:
        return False
    try:
        writer.write(data)
        writer.close()
    except WriteConflictError:
        return False
    return True


def _given(writer: FileWriter) -> Callable[[], FileWriter]:
    """An opener for :func:`_attempt` of a writer opened already."""
    return lambda: writer


def _finish(driver: StorageDriver, path: str, expected: bytes) -> None:
    """Continue the write once more, commit it, and check it holds ``expected`` + the tail."""
    tail = b"-tail"
    writer = driver.writer(path, append=True)
    assert writer.size == len(expected)
    writer.write(tail)
    writer.commit()
    assert driver.get_content(path) == expected + tail


def _write_then_close(*rivals: tuple[FileWriter, bytes]) -> list[bool]:
    """Each rival writes, then each closes; whether each got through without a conflict."""
    outcome = []
    for writer, data in rivals:
        try:
            writer.write(data)
            outcome.append(True)
        except WriteConflictError:
            outcome.append(False)
    for i, (writer, _) in enumerate(rivals):
        try:
            writer.close()
        except WriteConflictError:
            outcome[i] = False
    return outcome

class OneWriterCases(SuiteBase):
    """Rivals from one offset: one close succeeds, the other is refused, nothing is torn."""

    def _started(self, driver: StorageDriver, path: str) -> bytes:
        base = payload(3 * KIB + 7, seed=1)
        with driver.writer(path) as writer:
            writer.write(base)
        return base

    def test_rival_after_winner_closed(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "upload")
        base = self._started(driver, path)
        first, second = driver.writer(path, append=True), driver.writer(path, append=True)
        mine, theirs = payload(2 * KIB, seed=2), payload(2 * KIB, seed=3)
        first.write(mine)
        first.close()
        try:
            second.write(theirs)
            second.close()
        except WriteConflictError:
            pass
        else:
            raise AssertionError("two writers resumed one write from one offset and both won")
        _finish(driver, path, base + mine)

    def test_rivals_both_written_before_either_closes(
        self, driver: StorageDriver, root: str
    ) -> None:
        path = under(root, "upload")
        base = self._started(driver, path)
        first, second = driver.writer(path, append=True), driver.writer(path, append=True)
        mine, theirs = payload(2 * KIB, seed=2), payload(2 * KIB, seed=3)
        outcome = _write_then_close((first, mine), (second, theirs))
        assert outcome.count(True) == 1, outcome
        _finish(driver, path, base + (mine if outcome[0] else theirs))

    def test_concurrent_rivals(self, driver: StorageDriver, root: str) -> None:
        """Two threads released at once resume one write, :data:`RACES` times over."""
        path = under(root, "upload")
        expected = self._started(driver, path)
        for race in range(RACES):
            bodies = [payload(KIB + race, seed=10 * race + i) for i in range(2)]
            barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT)
            won = [False, False]

            def rival(i: int, bodies: list[bytes] = bodies, barrier: threading.Barrier = barrier,
                      won: list[bool] = won) -> None:
                def opened() -> FileWriter:
                    writer = driver.writer(path, append=True)
                    barrier.wait()
                    return writer

                won[i] = _attempt(opened, bodies[i])

            threads = [threading.Thread(target=rival, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(BARRIER_TIMEOUT)
            assert won.count(True) == 1, (race, won)
            expected += bodies[won.index(True)]
        _finish(driver, path, expected)

    def test_rival_fresh_writes(self, driver: StorageDriver, root: str) -> None:
        """Two ``resume_writer`` that found nothing (an upload without its empty data write)."""
        for case, closes_first in (("closed", True), ("open", False)):
            path = under(root, case, "upload")
            first, second = driver.resume_writer(path), driver.resume_writer(path)
            assert first.size == second.size == 0
            mine, theirs = payload(2 * KIB, seed=2), payload(2 * KIB, seed=3)
            if closes_first:
                outcome = [_attempt(_given(first), mine), _attempt(_given(second), theirs)]
            else:
                outcome = _write_then_close((first, mine), (second, theirs))
            assert outcome.count(True) == 1, (case, outcome)
            _finish(driver, path, mine if outcome[0] else theirs)

    def test_rival_continuing_a_committed_write(self, driver: StorageDriver, root: str) -> None:
        """``move_committed`` never moves what a rival appended after the commit.

        The filesystem appends in place, so it refuses the move; object stores keep the
        committed object until a rival commits, so they move the committed bytes.
        """
        path, dest = under(root, "upload"), under(root, "blob")
        base = self._started(driver, path)
        committing = driver.writer(path, append=True)
        committing.commit()
        rival = driver.writer(path, append=True)
        rival.write(b"-unverified")
        rival.close()
        try:
            driver.move_committed(committing, dest)
        except WriteConflictError:
            with raises(driver, PathNotFoundError):
                driver.stat(dest)
        else:
            assert driver.get_content(dest) == base

    def test_expect_fresh_never_replaces_a_stored_write(
        self, driver: StorageDriver, root: str
    ) -> None:
        path = under(root, "upload")
        stored = payload(2 * KIB, seed=4)
        with driver.resume_writer(path) as first:
            first.write(stored)
        blind = driver.resume_writer(path, expect_fresh=True)
        late = payload(KIB, seed=5)
        blind.write(late)
        if driver.fresh_writes_fenced:  # it did not look: its close is the look
            with raises(driver, WriteConflictError):
                blind.close()
            _finish(driver, path, stored)
        else:  # it looked, and continues the stored write
            blind.close()
            _finish(driver, path, stored + late)

    @pytest.mark.parametrize("sizes", [[5000], [6 * MIB + 1, 3]], ids=["one-part", "parts"])
    def test_commit_to_if_absent(self, driver: StorageDriver, root: str, sizes: list[int]) -> None:
        source, dest = under(root, "uploads", "data"), under(root, "blobs", "data")
        driver.put_content(dest, b"already here")
        expected = b""
        for number, size in enumerate(sizes):
            writer = driver.resume_writer(source)
            data = payload(size, seed=number)
            writer.write(data)
            expected += data
            if number < len(sizes) - 1:
                writer.close()
        assert driver.commit_to(writer, dest, if_absent=True) is False
        assert driver.get_content(dest) == b"already here"
        driver.delete(dest)
        if writer.state.name == "COMMITTED":  # by name: mypy would keep the narrowed type
            # completed for a conditional copy: in place, as after commit()
            assert driver.get_content(source) == expected
            driver.move_committed(writer, dest)
        else:
            assert writer.state.name == "OPEN"
            assert driver.commit_to(writer, dest, if_absent=True) is True
            assert writer.state is WriterState.COMMITTED
        assert driver.get_content(dest) == expected


class WholePartRivalCases(SuiteBase):
    """Rivals that each send whole parts with different bytes: neither replaces the other's.

    Both continue a write that already holds a whole part (so an object store's multipart
    upload is shared), and each writes two more whole parts before either closes.
    """

    def test_rivals_sending_whole_parts(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "upload")
        base = payload(WHOLE_PART + 7, seed=1)
        with driver.writer(path) as writer:
            writer.write(base)
        first, second = driver.writer(path, append=True), driver.writer(path, append=True)
        mine, theirs = payload(2 * WHOLE_PART + 5, seed=2), payload(2 * WHOLE_PART + 5, seed=3)
        outcome = _write_then_close((first, mine), (second, theirs))
        assert outcome.count(True) == 1, outcome
        _finish(driver, path, base + (mine if outcome[0] else theirs))
