"""The blob-descriptor cache (``storage.cache.blobdescriptor``): never the only copy of anything.

The storage is always the truth. A cache answers two questions a blob ``stat`` asks the storage
— "does repository R link digest D?" and "what are D's size and media type?" — and every answer
it cannot give (a miss, a flushed or unreachable cache) is read from the storage and written
back. Three implementations:

- :class:`InMemoryDescriptorCache` keeps, per process, only what can never go stale across a
  fleet: a digest's size and media type (content addressing makes them immutable). Whether a
  repository links a digest is still read from the storage on every ``stat``, because another
  instance may delete it at any time.
- :class:`.rediscache.RedisDescriptorCache` is shared by the fleet, so it also keeps membership;
  every instance removes what it deletes (blob unlink, garbage collection) from it.
- :class:`RecentWritesCache`, what ``layerstore serve`` uses when no cache is configured, keeps
  only the sizes of blobs this process itself placed as new data, for :data:`RECENT_TTL_S`. Data
  that young cannot be collected while its link exists (a collection spares data and links
  younger than its grace period, which must exceed :data:`RECENT_TTL_S`; DESIGN §11), and the
  link is still read on every ``stat``; so a manifest PUT or a pull right after a push, served by
  the process that took the push, need not look at the data again (another process looks).

Cache failures are counted in :data:`FALLBACKS` and logged at most once a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Protocol

from .descriptor import Descriptor

log = logging.getLogger(__name__)

#: Descriptors the in-memory cache keeps (least recently used go first).
INMEMORY_ENTRIES = 100_000
#: How long :class:`RecentWritesCache` answers for data this process placed (below any GC grace).
RECENT_TTL_S = 300.0
#: Blobs :class:`RecentWritesCache` keeps (the oldest go first).
RECENT_ENTRIES = 10_000
#: At most one log line about cache failures per this many seconds.
LOG_INTERVAL_S = 60.0


class BlobDescriptorCache(Protocol):
    """What the blob service asks a cache; every method is best effort and never raises."""

    def lookup(self, repository: str, digest: str) -> tuple[bool, Descriptor | None]:
        """(whether ``repository`` is known to link ``digest``, the digest's descriptor)."""

    def remember(self, repository: str, descriptor: Descriptor) -> None:
        """Record that ``repository`` links the blob (the storage has just said so)."""

    def remember_written(self, descriptor: Descriptor) -> None:
        """Record that this process has just placed the blob's data where none was."""

    def forget_member(self, repository: str, digest: str) -> None:
        """``repository`` no longer links ``digest`` (an unlink or a manifest delete)."""

    def forget_blobs(self, digests: Iterable[str]) -> None:
        """The blobs' data is gone (garbage collection): forget them everywhere."""


class FallbackCounter:
    """Counts reads that went to the storage because the cache failed; logs rate-limited.

    A plain counter until the metrics module lands; ``count`` is what an exporter reads.
    """

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self._last_log = -LOG_INTERVAL_S

    def record(self, what: str, exc: BaseException) -> None:
        with self._lock:
            self.count += 1
            now = time.monotonic()
            if now - self._last_log < LOG_INTERVAL_S:
                return
            self._last_log = now
            total = self.count
        log.warning("blob-descriptor cache %s failed, using the storage (%d so far): %s",
                    what, total, exc)


#: Every cache failure of this process.
FALLBACKS = FallbackCounter()


class InMemoryDescriptorCache:
    """Per-process digest → descriptor map: immutable facts only, membership never."""

    def __init__(self, entries: int = INMEMORY_ENTRIES) -> None:
        self._entries = entries
        self._descriptors: OrderedDict[str, Descriptor] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, repository: str, digest: str) -> tuple[bool, Descriptor | None]:
        with self._lock:
            desc = self._descriptors.get(digest)
            if desc is not None:
                self._descriptors.move_to_end(digest)
        return False, desc

    def remember(self, repository: str, descriptor: Descriptor) -> None:
        with self._lock:
            self._descriptors[descriptor.digest] = descriptor
            self._descriptors.move_to_end(descriptor.digest)
            while len(self._descriptors) > self._entries:
                self._descriptors.popitem(last=False)

    def remember_written(self, descriptor: Descriptor) -> None:
        """Nothing more to do: the commit that placed it has just remembered it."""

    def forget_member(self, repository: str, digest: str) -> None:
        """Nothing to do: membership is never cached here."""

    def forget_blobs(self, digests: Iterable[str]) -> None:
        with self._lock:
            for digest in digests:
                self._descriptors.pop(digest, None)


class RecentWritesCache:
    """Sizes of the blobs this process placed as new data, for :data:`RECENT_TTL_S` only.

    What a ``stat`` found in the storage is not kept: data that is not new may be collected at
    any time. Membership is never cached.
    """

    def __init__(self, ttl_s: float = RECENT_TTL_S, entries: int = RECENT_ENTRIES) -> None:
        self._ttl_s = ttl_s
        self._entries = entries
        self._written: OrderedDict[str, tuple[float, Descriptor]] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, repository: str, digest: str) -> tuple[bool, Descriptor | None]:
        with self._lock:
            entry = self._written.get(digest)
            if entry is None:
                return False, None
            if time.monotonic() - entry[0] >= self._ttl_s:
                del self._written[digest]
                return False, None
        return False, entry[1]

    def remember(self, repository: str, descriptor: Descriptor) -> None:
        """Nothing to do: what the storage said may be collected at any time."""

    def remember_written(self, descriptor: Descriptor) -> None:
        with self._lock:
            self._written[descriptor.digest] = (time.monotonic(), descriptor)
            self._written.move_to_end(descriptor.digest)
            while len(self._written) > self._entries:
                self._written.popitem(last=False)

    def forget_member(self, repository: str, digest: str) -> None:
        """Nothing to do: membership is never cached here."""

    def forget_blobs(self, digests: Iterable[str]) -> None:
        with self._lock:
            for digest in digests:
                self._written.pop(digest, None)
