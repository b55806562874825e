"""A redis-py client from Distribution's ``redis`` config section: one server, Sentinel or Cluster.

Mapping of Distribution's keys: ``addr`` (or one of ``addrs``) → host and port; ``addrs`` with
``mastername`` → Sentinel; ``addrs`` without → Cluster; ``password``, ``db``; ``dialtimeout`` →
the connect timeout; ``readtimeout`` / ``writetimeout`` → the socket timeout (redis-py has one:
the larger); ``pool.maxactive`` → the pool's connection limit; ``pool.idletimeout`` → the health
check interval (an idle connection is checked before reuse); ``pool.maxidle`` has no redis-py
counterpart and is accepted only; ``tls.enabled`` → TLS. Retries are off: a failing Redis must
cost one short timeout, after which the callers go to the storage.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

DEFAULT_DIAL_TIMEOUT_S = 1.0
DEFAULT_IO_TIMEOUT_S = 1.0


@dataclasses.dataclass(frozen=True)
class RedisSettings:
    """The ``redis`` section, validated (see the module docstring for the mapping)."""

    addrs: tuple[tuple[str, int], ...] = (("localhost", 6379),)
    mastername: str | None = None
    username: str | None = None
    password: str | None = None
    db: int = 0
    dialtimeout: float = DEFAULT_DIAL_TIMEOUT_S
    readtimeout: float = DEFAULT_IO_TIMEOUT_S
    writetimeout: float = DEFAULT_IO_TIMEOUT_S
    maxidle: int | None = None
    maxactive: int | None = None
    idletimeout: float = 0.0
    tls: bool = False


def _common(settings: RedisSettings) -> dict[str, Any]:
    return {
        "username": settings.username,
        "password": settings.password,
        "socket_connect_timeout": settings.dialtimeout or None,
        "socket_timeout": max(settings.readtimeout, settings.writetimeout) or None,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": int(settings.idletimeout),
    }


def connect(settings: RedisSettings) -> redis.Redis | RedisCluster:
    """A client (connections open lazily, so an unreachable Redis is no start-up error)."""
    kwargs = _common(settings)
    if settings.maxactive:
        kwargs["max_connections"] = settings.maxactive
    if settings.mastername:
        sentinel_kwargs = {"socket_connect_timeout": kwargs["socket_connect_timeout"],
                           "socket_timeout": kwargs["socket_timeout"],
                           "password": settings.password}
        sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            list(settings.addrs), sentinel_kwargs=sentinel_kwargs
        )
        client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]  # as above
            settings.mastername, db=settings.db, ssl=settings.tls, **kwargs
        )
        return client
    if len(settings.addrs) > 1:
        nodes = [ClusterNode(host, port)  # type: ignore[no-untyped-call]  # as above
                 for host, port in settings.addrs]
        return RedisCluster(startup_nodes=nodes, ssl=settings.tls, **kwargs)
    host, port = settings.addrs[0]
    return redis.Redis(host=host, port=port, db=settings.db, ssl=settings.tls, **kwargs)
