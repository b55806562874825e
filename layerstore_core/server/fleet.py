"""What one instance of a fleet shares with the others: the Redis client, cache and leases."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from ..driver import StorageDriver
from ..registry.cache import BlobDescriptorCache, InMemoryDescriptorCache, RecentWritesCache
from ..registry.leases import Lease, LeaseBusyError, LeaseLostError, fleet_lease
from ..registry.rediscache import Client, RedisDescriptorCache
from ..registry.redisconn import connect
from .config import Config

log = logging.getLogger(__name__)

_T = TypeVar("_T")


def redis_client(config: Config) -> Client | None:
    """The client of the ``redis`` section, or None (connections open lazily)."""
    return connect(config.redis) if config.redis is not None else None


def blob_cache(config: Config, client: Client | None) -> BlobDescriptorCache:
    """The ``storage.cache.blobdescriptor`` cache; without one, this process's recent writes."""
    if config.blobdescriptor_cache == "inmemory":
        return InMemoryDescriptorCache()
    if config.blobdescriptor_cache == "redis":
        assert client is not None  # the config requires a redis section
        return RedisDescriptorCache(client)
    return RecentWritesCache()


def run_leased(driver: StorageDriver, client: Client | None, name: str,
               job: Callable[[Lease], _T]) -> _T | None:
    """Run ``job(lease)`` holding the fleet's lease ``name`` (the job renews it as it goes).

    None when another instance holds the lease, or when the job lost it (it stopped then).
    """
    lease = fleet_lease(driver, client, name)
    try:
        lease.acquire()
    except LeaseBusyError as exc:
        log.info("%s skipped: %s", name, exc)
        return None
    try:
        return job(lease)
    except LeaseLostError as exc:
        log.warning("%s stopped: %s", name, exc)
        return None
    finally:
        lease.release()
