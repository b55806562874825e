"""One collector at a time across a fleet: a small lease interface and its storage object.

The contract has no compare-and-swap, so :class:`StorageLease` takes the lease by writing
``_gc/lease`` (owner and expiry) and reading it back after :data:`SETTLE_S`: of collectors that
raced, the one whose write landed last reads its own name and wins; the others read a rival's
and back off. That holds while the gap between a collector's read of a free lease and its write
is shorter than the settle time (milliseconds against seconds). A holder renews well before the
expiry; a collector that cannot renew stops deleting. Another implementation (a Redis lease)
only has to provide the :class:`Lease` protocol.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
import uuid
from typing import Protocol

from ..driver import StorageDriver
from ..errors import PathNotFoundError
from ..registry import paths as p

log = logging.getLogger(__name__)

#: How long a lease lasts without renewal.
DEFAULT_TTL_S = 120.0
#: Wait between writing the lease and reading it back.
SETTLE_S = 1.0


class GCBusyError(RuntimeError):
    """Another collector holds the lease."""


class LeaseLostError(RuntimeError):
    """The lease is no longer ours (it expired, or another collector took it)."""


class Lease(Protocol):
    """Mutual exclusion of collectors: acquire, renew before ``ttl`` runs out, release."""

    owner: str
    ttl: float

    def acquire(self) -> None:
        """Take the lease or raise :class:`GCBusyError`."""

    def renew(self) -> None:
        """Extend the lease or raise :class:`LeaseLostError`."""

    def release(self) -> None:
        """Give the lease up (only if still ours)."""


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The lease object's content."""

    owner: str
    expires: dt.datetime

    def encode(self) -> bytes:
        return json.dumps({"owner": self.owner, "expires": self.expires.isoformat()}).encode()

    @classmethod
    def decode(cls, raw: bytes) -> LeaseRecord | None:
        try:
            doc = json.loads(raw)
            return cls(str(doc["owner"]), dt.datetime.fromisoformat(doc["expires"]))
        except (ValueError, KeyError, TypeError):
            log.warning("treating a damaged gc lease (%d bytes) as free", len(raw))
            return None


class StorageLease:
    """The lease as an object in the storage itself (``_gc/lease``)."""

    def __init__(
        self, driver: StorageDriver, ttl: float = DEFAULT_TTL_S, settle: float = SETTLE_S
    ) -> None:
        self._driver = driver
        self._path = p.path_for(p.GCLeasePath())
        self.owner = f"gc-{uuid.uuid4().hex[:12]}"
        self.ttl = ttl
        self._settle = settle

    def _read(self) -> LeaseRecord | None:
        try:
            return LeaseRecord.decode(self._driver.get_content(self._path))
        except PathNotFoundError:
            return None

    def _write(self) -> None:
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.ttl)
        self._driver.put_content(self._path, LeaseRecord(self.owner, expires).encode())

    def _held_by_other(self) -> LeaseRecord | None:
        current = self._read()
        if current is None or current.owner == self.owner:
            return None
        return current if current.expires > dt.datetime.now(dt.UTC) else None

    def acquire(self) -> None:
        holder = self._held_by_other()
        if holder is not None:
            raise GCBusyError(f"{holder.owner} holds the gc lease until {holder.expires}")
        self._write()
        time.sleep(self._settle)
        current = self._read()
        if current is None or current.owner != self.owner:
            rival = current.owner if current else "nobody"
            raise GCBusyError(f"lost the race for the gc lease to {rival}")

    def renew(self) -> None:
        current = self._read()
        if current is None or current.owner != self.owner:
            raise LeaseLostError(f"the gc lease is now held by {current.owner if current else 0}")
        self._write()

    def release(self) -> None:
        current = self._read()
        if current is not None and current.owner == self.owner:
            try:
                self._driver.delete(self._path)
            except PathNotFoundError:
                pass
