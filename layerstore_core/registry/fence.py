"""The writers' half of online garbage collection: never rely on a digest a sweep may delete.

A collector that is about to delete first publishes the digests it may delete
(``_gc/doomed/<run>/`` shards) and then the sweep marker (``_gc/sweep``, with an expiry), and
only then takes its last look at the repositories (see ``layerstore_core.gc``). A writer
(manifest PUT, tag, blob commit that found the blob already stored, mount) first writes its own
link, then calls :func:`wait_until_safe` and then re-checks that what it relies on still
exists. Either the writer sees the marker, or the collector's last look sees the writer's link
(each side writes before it reads), so no digest a writer relied on is deleted behind its back.

Without a sweep in progress this costs one read of a missing object per write.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import Iterable

from ..driver import StorageDriver
from ..errors import PathNotFoundError
from . import paths as p

log = logging.getLogger(__name__)

#: How often a writer looks again while a digest it needs is doomed.
POLL_S = 0.2
#: A writer never waits longer than this, whatever the marker says (then it re-checks).
MAX_WAIT_S = 600.0


@dataclasses.dataclass(frozen=True, slots=True)
class SweepMarker:
    """What ``_gc/sweep`` says: which run deletes, and until when it may."""

    run: str
    expires: dt.datetime

    def encode(self) -> bytes:
        return json.dumps({"run": self.run, "expires": self.expires.isoformat()}).encode()

    @classmethod
    def decode(cls, raw: bytes) -> SweepMarker | None:
        """Parse a marker; a damaged one is treated as absent (and logged)."""
        try:
            doc = json.loads(raw)
            return cls(str(doc["run"]), dt.datetime.fromisoformat(doc["expires"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring damaged sweep marker (%d bytes)", len(raw))
            return None

    def active(self, now: dt.datetime | None = None) -> bool:
        return (now or dt.datetime.now(dt.UTC)) < self.expires


def shard_of(digest: str) -> str:
    """The doomed-list shard a digest belongs to (``sha256-a``): 16 per algorithm."""
    alg, _, hex_ = digest.partition(":")
    return f"{alg}-{hex_[:1]}"


def read_marker(driver: StorageDriver) -> SweepMarker | None:
    """The sweep marker, or None when no sweep is deleting."""
    try:
        raw = driver.get_content(p.path_for(p.GCSweepPath()))
    except PathNotFoundError:
        return None
    return SweepMarker.decode(raw)


def read_shard(driver: StorageDriver, run: str, shard: str) -> set[str]:
    """The digests of one shard that sweep ``run`` may delete (empty when the shard is gone)."""
    try:
        raw = driver.get_content(p.path_for(p.GCDoomedPath(run, shard)))
    except PathNotFoundError:
        return set()
    return set(raw.decode("ascii", "replace").split())


def doomed_among(driver: StorageDriver, digests: Iterable[str]) -> set[str]:
    """Which of ``digests`` an active sweep may still delete (one read when none is active)."""
    wanted = set(digests)
    marker = read_marker(driver)
    if not wanted or marker is None or not marker.active():
        return set()
    found: set[str] = set()
    for shard in sorted({shard_of(d) for d in wanted}):
        found |= wanted & read_shard(driver, marker.run, shard)
    return found


def sweep_active(driver: StorageDriver) -> bool:
    """Whether a sweep marker is present and not expired."""
    marker = read_marker(driver)
    return marker is not None and marker.active()


def wait_until_safe(driver: StorageDriver, digests: Iterable[str]) -> bool:
    """Wait until no active sweep may delete any of ``digests``; True if a sweep was active.

    Call it after writing the link that makes the digests live. False means no sweep was
    deleting when the link was already written, so the sweep's last look sees the link and
    nothing needs checking. True means re-check existence: the sweep may have deleted a digest
    before it saw the link.
    """
    wanted = set(digests)
    if not wanted or not sweep_active(driver):
        return False
    deadline = time.monotonic() + MAX_WAIT_S
    while doomed := doomed_among(driver, wanted):
        if time.monotonic() >= deadline:
            log.warning("gave up waiting for a sweep to release %d digest(s)", len(doomed))
            break
        time.sleep(POLL_S)
    return True
