"""The fleet's shared blob-descriptor cache in Redis, in Distribution's key layout.

Keys (as Distribution's ``redis`` blob-descriptor cache)::

    blobs::<digest>                  hash: digest, size, mediatype
    repository::<name>::blobs        set of the digests the repository links
    repository::<name>::<digest>     hash: digest, mediatype (the membership we look up)

Every key expires after :data:`ENTRY_TTL_S`, which bounds how long an entry can outlive a delete
whose invalidation could not reach Redis. Such failed invalidations are also kept and replayed
before this process reads Redis again; until they go through it reads the storage. After a
failure Redis is left alone for :data:`RETRY_AFTER_S` (reads go to the storage meanwhile), so an
unreachable Redis costs one short timeout, not one per request.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis
from redis.cluster import RedisCluster

from .cache import FALLBACKS
from .descriptor import Descriptor

#: Lifetime of every cache key, renewed when the entry is written again.
ENTRY_TTL_S = 3600
#: After a Redis failure, reads skip Redis for this long.
RETRY_AFTER_S = 5.0
#: What a failing Redis raises (timeouts and refused connections are ConnectionErrors or OSErrors;
#: a Cluster with slots left uncovered raises redis-py's RedisClusterException, no RedisError).
REDIS_ERRORS = (redis.RedisError, redis.exceptions.RedisClusterException, OSError)

Client = redis.Redis | RedisCluster


def blob_key(digest: str) -> str:
    return f"blobs::{digest}"


def member_key(repository: str, digest: str) -> str:
    return f"repository::{repository}::{digest}"


def members_key(repository: str) -> str:
    return f"repository::{repository}::blobs"


class RedisDescriptorCache:
    """Descriptors and per-repository membership, shared by every instance of a fleet."""

    def __init__(self, client: Client, ttl: int = ENTRY_TTL_S) -> None:
        self._client = client
        self._ttl = ttl
        self._lock = threading.Lock()
        self._down_until = 0.0
        #: Invalidations that could not reach Redis, replayed before the next read.
        self._pending: collections.deque[list[str]] = collections.deque()
        self._pending_members: collections.deque[tuple[str, str]] = collections.deque()

    # -- reads ------------------------------------------------------------------------------

    def lookup(self, repository: str, digest: str) -> tuple[bool, Descriptor | None]:
        if not self._usable():
            return False, None
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.exists(member_key(repository, digest))
            pipe.hmget(blob_key(digest), ["size", "mediatype"])
            member, (size, media_type) = pipe.execute()
        except REDIS_ERRORS as exc:
            self._failed("read", exc)
            return False, None
        if size is None:
            return bool(member), None
        return bool(member), Descriptor(
            digest, int(size), media_type.decode() if media_type else None
        )

    # -- writes -----------------------------------------------------------------------------

    def remember(self, repository: str, descriptor: Descriptor) -> None:
        if not self._usable():
            return
        media = descriptor.media_type or ""
        try:
            pipe = self._client.pipeline(transaction=False)
            key = blob_key(descriptor.digest)
            pipe.hset(key, mapping={"digest": descriptor.digest, "size": descriptor.size,
                                    "mediatype": media})
            pipe.expire(key, self._ttl)
            key = member_key(repository, descriptor.digest)
            pipe.hset(key, mapping={"digest": descriptor.digest, "mediatype": media})
            pipe.expire(key, self._ttl)
            pipe.sadd(members_key(repository), descriptor.digest)
            pipe.expire(members_key(repository), self._ttl)
            pipe.execute()
        except REDIS_ERRORS as exc:
            self._failed("write", exc)

    def remember_written(self, descriptor: Descriptor) -> None:
        """Nothing more to do: the commit that placed it remembers it with its repository."""

    def forget_member(self, repository: str, digest: str) -> None:
        if not self._invalidate(lambda pipe: _drop_member(pipe, repository, digest)):
            with self._lock:
                self._pending_members.append((repository, digest))

    def forget_blobs(self, digests: Iterable[str]) -> None:
        keys = [blob_key(d) for d in digests]
        if keys and not self._invalidate(lambda pipe: _delete(pipe, keys)):
            with self._lock:
                self._pending.append(keys)

    # -- failure handling -------------------------------------------------------------------

    def _invalidate(self, fill: Callable[[Any], object]) -> bool:
        """Run one invalidation, always (even while reads skip Redis); False if it failed."""
        try:
            pipe = self._client.pipeline(transaction=False)
            fill(pipe)
            pipe.execute()
        except REDIS_ERRORS as exc:
            self._failed("invalidation", exc)
            return False
        return True

    def _usable(self) -> bool:
        """Whether to talk to Redis now: not within a back-off, no invalidation outstanding."""
        with self._lock:
            if time.monotonic() < self._down_until:
                return False
            pending, members = list(self._pending), list(self._pending_members)
        if not pending and not members:
            return True

        def replay(pipe: Any) -> None:
            for keys in pending:
                _delete(pipe, keys)
            for repository, digest in members:
                _drop_member(pipe, repository, digest)

        if not self._invalidate(replay):
            return False
        with self._lock:
            for _ in pending:
                self._pending.popleft()
            for _ in members:
                self._pending_members.popleft()
        return True

    def _failed(self, what: str, exc: BaseException) -> None:
        with self._lock:
            self._down_until = time.monotonic() + RETRY_AFTER_S
        FALLBACKS.record(what, exc)


def _delete(pipe: Any, keys: list[str]) -> None:
    """One DEL per key: a Cluster pipeline takes no multi-key DEL (keys lie in several slots)."""
    for key in keys:
        pipe.delete(key)


def _drop_member(pipe: Any, repository: str, digest: str) -> None:
    pipe.delete(member_key(repository, digest))
    pipe.srem(members_key(repository), digest)
