"""The claimed part-number ranges of ``objectstore.partclaims``, on the inmemory bucket."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import ClassVar

import pytest

from layerstore_core import PartNumbersExhaustedError, StorageDriverError
from layerstore_core.drivers.inmemory import MemoryBucket
from layerstore_core.objectstore import UploadState, partclaims
from layerstore_core.objectstore.bucket import Part
from layerstore_core.objectstore.partwriter import discard, side_keys

KEY = "uploads/u/data"


class SmallBucket(MemoryBucket):
    """A store that takes 8 part numbers: whole parts 1..7, the final part 8."""

    max_parts: ClassVar[int] = 8


def _session(bucket: MemoryBucket, last_part: int = 1,
             claims: list[partclaims.Claim] | None = None) -> partclaims.PartNumbers:
    return partclaims.PartNumbers(bucket, KEY, "/u", last_part=last_part, shared=True,
                                  claims=claims or [])


def _take(numbers: partclaims.PartNumbers, count: int) -> list[int]:
    return [numbers.take() for _ in range(count)]


def test_ranges_grow_one_two_four() -> None:
    bucket = MemoryBucket()
    session = _session(bucket)
    assert _take(session, 15) == list(range(2, 17))
    assert session.claims == [(2, 1), (3, 2), (5, 4), (9, 8)]
    for first, count in session.claims:
        assert partclaims.claimed_count(bucket, KEY, first, "/u") == count


def test_no_claim_before_a_number_is_needed() -> None:
    bucket = MemoryBucket()
    session = _session(bucket)
    assert session.claims == []
    assert bucket.list_page(KEY, delimiter=False, token=None).objects == []


def test_rivals_never_share_a_number() -> None:
    bucket = MemoryBucket()
    first, second = _session(bucket), _session(bucket)
    taken: dict[str, list[int]] = {"first": [], "second": []}
    for who, session, count in [("first", first, 1), ("second", second, 3), ("first", first, 4),
                                ("second", second, 2), ("first", first, 9)]:
        taken[who] += _take(session, count)
    assert not set(taken["first"]) & set(taken["second"])
    for numbers in taken.values():
        assert numbers == sorted(numbers)
    chain = sorted({*first.claims, *second.claims})
    assert chain[0][0] == 2
    for (a, n), (b, _) in zip(chain, chain[1:], strict=False):
        assert a + n == b, chain  # one chain: each claim starts where one before it ends


def test_continuation_starts_past_the_winners_claims() -> None:
    """Not after the winner's last part: a loser still sending holds the numbers past its claims."""
    bucket = MemoryBucket()
    winner, loser = _session(bucket), _session(bucket)
    winner_parts = _take(winner, 4)  # claims 2, 3-4, 5-8; sends 2..5
    assert winner_parts == [2, 3, 4, 5]
    later = _session(bucket, last_part=winner_parts[-1], claims=winner.claims)
    loser_parts = _take(loser, 12)  # after the winner's claims: 9 onwards
    later_parts = _take(later, 12)
    assert not set(loser_parts) & set(later_parts)
    assert min(later_parts) > max(n for f, c in winner.claims for n in range(f, f + c))


def test_claims_stop_before_the_final_part_number() -> None:
    bucket = SmallBucket()
    session = _session(bucket)
    assert _take(session, 6) == [2, 3, 4, 5, 6, 7]
    assert session.claims == [(2, 1), (3, 2), (5, 3)]  # the last range cut at 7
    with pytest.raises(PartNumbersExhaustedError):
        session.take()


def test_exhausted_when_a_rival_holds_the_rest() -> None:
    bucket = SmallBucket()
    assert partclaims.claim(bucket, KEY, 2, 6)
    with pytest.raises(PartNumbersExhaustedError):
        _session(bucket).take()


def test_unshared_numbers_run_in_order_to_the_limit() -> None:
    bucket = SmallBucket()
    session = partclaims.PartNumbers(bucket, KEY, "/u")
    assert _take(session, 7) == list(range(1, 8))
    assert session.claims == []
    with pytest.raises(PartNumbersExhaustedError):
        session.take()
    assert bucket.list_page(KEY, delimiter=False, token=None).objects == []


def test_an_unreadable_claim_is_an_error() -> None:
    bucket = MemoryBucket()
    bucket.put(partclaims.claim_key(KEY, 2), b"not a claim")
    with pytest.raises(StorageDriverError, match="unreadable part claim"):
        _session(bucket).take()


def test_state_keeps_its_claims() -> None:
    state = UploadState("id", 5, [Part(1, 5, "e", "")], b"t", dt.datetime.now(dt.UTC),
                        [0], [(2, 1), (3, 2)])
    again = UploadState.decode(state.encode(), "/u")
    assert again.claims == [(2, 1), (3, 2)]
    assert UploadState.decode(UploadState("id", 5, [], b"", state.created).encode(),
                              "/u").claims == []


class CountingBucket(MemoryBucket):
    """The inmemory bucket, recording the size of each delete request."""

    def __init__(self) -> None:
        super().__init__()
        self.deletes: list[int] = []

    def delete_many(self, keys: Sequence[str]) -> None:
        self.deletes.append(len(keys))
        super().delete_many(keys)


def test_discard_deletes_claims_with_the_state_in_batches() -> None:
    bucket = CountingBucket()
    claims = [(2 + i, 1) for i in range(1500)]
    state = UploadState(None, 5, [], b"", dt.datetime.now(dt.UTC), [0, 7], claims)
    keys = side_keys(KEY, state)
    for key in keys:
        bucket.put(key, b"x")
    assert len(keys) == 1 + 2 + 1500
    discard(bucket, KEY, state)
    assert bucket.deletes == [1000, 503]
    assert bucket.list_page("", delimiter=False, token=None).objects == []
