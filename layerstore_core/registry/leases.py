"""Fleet-wide leases (one upload purger, one garbage collector at a time): Redis or the storage.

The one lease module: the garbage collector (``gc``), the upload purger (``uploadpurge``) and any
other one-at-a-time job take a :class:`Lease` (acquire, renew, release, ``owner``, ``ttl``):

- :class:`RedisLease`: ``SET key owner NX PX ttl``; renew and release compare the owner first
  (one Lua script each), so a lease that expired and was taken is never extended or dropped.
- :class:`StorageLease`: an object in the storage (``_leases/<name>``; gc's is ``_gc/lease``),
  written and read back after :data:`SETTLE_S`: of takers that raced, the one whose write landed
  last reads its own name and wins. That holds while the gap between a taker's read of a free
  lease and its write is shorter than the settle time (milliseconds against seconds).
  ``put_content_if_absent`` alone cannot make it race-free: taking over an *expired* lease, and
  renewing, replace an existing object, and the contract has no conditional replace or delete
  (two takers that both saw it expired would both delete and re-create); and
  gcp-storage-emulator ignores preconditions, so a CAS-based lease would be untestable there.
- :class:`FallbackLease`: Redis when configured and reachable, else the storage lease, so a
  fleet keeps its one purger while Redis is down.
- :class:`StrictLease` (``fleet_lease(..., strict=True)``, gc's): Redis when reachable *and* the
  storage lease, so an instance cut off from Redis never runs beside a Redis holder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Protocol

from ..driver import StorageDriver
from ..errors import PathNotFoundError
from . import paths as p

if TYPE_CHECKING:  # redis-py is the server extra's; the core (gc) runs without it
    from .rediscache import Client

log = logging.getLogger(__name__)

#: How long a lease lasts without renewal.
DEFAULT_TTL_S = 120.0
#: Wait between writing a storage lease and reading it back.
SETTLE_S = 1.0
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then " \
         "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then " \
           "return redis.call('del', KEYS[1]) else return 0 end"


class LeaseBusyError(RuntimeError):
    """Another process holds the lease."""


class LeaseLostError(RuntimeError):
    """The lease is no longer ours."""


class Lease(Protocol):
    """Mutual exclusion across a fleet: acquire, renew before ``ttl`` runs out, release."""

    owner: str
    ttl: float

    def acquire(self) -> None:
        """Take the lease or raise :class:`LeaseBusyError`."""

    def renew(self) -> None:
        """Extend the lease or raise :class:`LeaseLostError`."""

    def release(self) -> None:
        """Give the lease up (only if still ours)."""


def _owner(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:12]}"


class RedisLease:
    """A lease as one Redis key, ``layerstore::lease::<name>``."""

    def __init__(self, client: Client, name: str, ttl: float = DEFAULT_TTL_S) -> None:
        self._client = client
        self._key = f"layerstore::lease::{name}"
        self.owner = _owner(name)
        self.ttl = ttl

    def acquire(self) -> None:
        if not self._client.set(self._key, self.owner, nx=True, px=int(self.ttl * 1000)):
            holder = self._client.get(self._key)
            raise LeaseBusyError(f"{holder!r} holds the lease {self._key}")

    def renew(self) -> None:
        if not self._client.eval(_RENEW, 1, self._key, self.owner, int(self.ttl * 1000)):
            raise LeaseLostError(f"the lease {self._key} is no longer ours")

    def release(self) -> None:
        self._client.eval(_RELEASE, 1, self._key, self.owner)


@dataclasses.dataclass(frozen=True, slots=True)
class _Record:
    owner: str
    expires: dt.datetime

    def encode(self) -> bytes:
        return json.dumps({"owner": self.owner, "expires": self.expires.isoformat()}).encode()

    @classmethod
    def decode(cls, raw: bytes) -> _Record | None:
        try:
            doc = json.loads(raw)
            return cls(str(doc["owner"]), dt.datetime.fromisoformat(doc["expires"]))
        except (ValueError, KeyError, TypeError):
            log.warning("treating a damaged lease (%d bytes) as free", len(raw))
            return None


def lease_path(name: str) -> str:
    """``<root>/docker/registry/v2/_leases/<name>`` beside ``repositories/``; gc: ``_gc/lease``."""
    if name == "gc":  # where gc has always kept it (docs/DESIGN.md, the gc section)
        return p.path_for(p.GCLeasePath())
    return f"{p.ROOT}/_leases/{name}"


class StorageLease:
    """A lease as an object in the storage: write, wait :data:`SETTLE_S`, read back."""

    def __init__(self, driver: StorageDriver, name: str = "gc", ttl: float = DEFAULT_TTL_S,
                 settle: float = SETTLE_S) -> None:
        self._name = name
        self._driver = driver
        self._path = lease_path(name)
        self.owner = _owner(name)
        self.ttl = ttl
        self._settle = settle

    def _read(self) -> _Record | None:
        try:
            return _Record.decode(self._driver.get_content(self._path))
        except PathNotFoundError:
            return None

    def _write(self) -> None:
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.ttl)
        self._driver.put_content(self._path, _Record(self.owner, expires).encode())

    def acquire(self) -> None:
        current = self._read()
        if current and current.owner != self.owner and current.expires > dt.datetime.now(dt.UTC):
            raise LeaseBusyError(
                f"{current.owner} holds the {self._name} lease until {current.expires}")
        self._write()
        time.sleep(self._settle)
        current = self._read()
        if current is None or current.owner != self.owner:
            rival = current.owner if current else "nobody"
            raise LeaseBusyError(f"lost the race for the {self._name} lease to {rival}")

    def renew(self) -> None:
        current = self._read()
        if current is None or current.owner != self.owner:
            raise LeaseLostError(f"the {self._name} lease is now held by "
                                 f"{current.owner if current else 'nobody'}")
        self._write()

    def release(self) -> None:
        current = self._read()
        if current is not None and current.owner == self.owner:
            try:
                self._driver.delete(self._path)
            except PathNotFoundError:
                pass


class FallbackLease:
    """The Redis lease while Redis answers; the storage lease when it does not."""

    def __init__(self, primary: RedisLease, fallback: StorageLease) -> None:
        self._primary, self._fallback = primary, fallback
        self._active: Lease = primary
        self.owner, self.ttl = primary.owner, primary.ttl

    def acquire(self) -> None:
        from .rediscache import REDIS_ERRORS

        try:
            self._primary.acquire()
            self._active = self._primary
        except REDIS_ERRORS as exc:
            log.warning("Redis lease unavailable (%s); using the storage lease", exc)
            self._fallback.acquire()
            self._active = self._fallback

    def renew(self) -> None:
        from .rediscache import REDIS_ERRORS

        try:
            self._active.renew()
        except REDIS_ERRORS as exc:
            raise LeaseLostError(f"cannot renew the Redis lease: {exc}") from exc

    def release(self) -> None:
        from .rediscache import REDIS_ERRORS

        try:
            self._active.release()
        except REDIS_ERRORS as exc:  # it expires on its own
            log.warning("cannot release the Redis lease (%s); it expires in %ss", exc, self.ttl)


class StrictLease:
    """The Redis lease while Redis answers *and* the storage lease, always.

    :class:`FallbackLease` lets an instance that cannot reach Redis take the storage lease while
    another holds the Redis one. The upload purger can live with that; gc cannot (two sweeps
    share one sweep marker, so a push could check the wrong run's doomed digests). Here the
    storage lease alone excludes; Redis in front makes a busy lease fail fast and race-free.
    """

    def __init__(self, primary: RedisLease, storage: StorageLease) -> None:
        self._redis, self._storage = primary, storage
        self._redis_held = False
        self.owner, self.ttl = storage.owner, storage.ttl

    def acquire(self) -> None:
        from .rediscache import REDIS_ERRORS

        try:
            self._redis.acquire()
            self._redis_held = True
        except REDIS_ERRORS as exc:
            log.warning("Redis lease unavailable (%s); the storage lease alone", exc)
        try:
            self._storage.acquire()
        except BaseException:
            self._drop_redis()
            raise

    def renew(self) -> None:
        from .rediscache import REDIS_ERRORS

        self._storage.renew()
        if self._redis_held:
            try:
                self._redis.renew()
            except (LeaseLostError, *REDIS_ERRORS) as exc:  # the storage lease still excludes
                log.warning("lost the Redis lease (%s); holding the storage lease", exc)
                self._redis_held = False

    def release(self) -> None:
        self._drop_redis()
        self._storage.release()

    def _drop_redis(self) -> None:
        from .rediscache import REDIS_ERRORS

        if self._redis_held:
            self._redis_held = False
            try:
                self._redis.release()
            except REDIS_ERRORS as exc:  # it expires on its own
                log.warning("cannot release the Redis lease (%s); it expires in %ss", exc, self.ttl)


class KeepAlive:
    """Renews a lease between the steps of a long job, once a third of its ``ttl`` has passed.

    Call it between steps; it raises :class:`LeaseLostError` when the lease is no longer ours,
    so the job stops before a step another holder could be running too.
    """

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self._renewed = time.monotonic()

    def __call__(self) -> None:
        if time.monotonic() - self._renewed >= self.lease.ttl / 3:
            self.lease.renew()
            self._renewed = time.monotonic()


def fleet_lease(driver: StorageDriver, client: Client | None, name: str,
                ttl: float = DEFAULT_TTL_S, *, strict: bool = False) -> Lease:
    """The lease ``name`` for this fleet: through Redis when configured, else the storage.

    ``strict``: a job two holders must never run at once (gc) holds the storage lease too
    (:class:`StrictLease`), so an instance cut off from Redis cannot run beside a Redis holder.
    """
    storage = StorageLease(driver, name, ttl)
    if client is None:
        return storage
    redis_lease = RedisLease(client, name, ttl)
    return StrictLease(redis_lease, storage) if strict else FallbackLease(redis_lease, storage)

