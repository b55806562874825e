"""A redis-py client from Distribution's ``redis`` config section: one server, Sentinel or Cluster.

Mapping of Distribution's keys: ``addr`` (or one of ``addrs``) → host and port; ``addrs`` with
``mastername`` → Sentinel; ``addrs`` without → Cluster; ``password``, ``db``; ``dialtimeout`` →
the connect timeout; ``readtimeout`` / ``writetimeout`` → the socket timeout (redis-py has one:
the larger); ``pool.maxactive`` → the pool's connection limit; ``pool.idletimeout`` → the health
check interval (an idle connection is checked before reuse); ``pool.maxidle`` has no redis-py
counterpart and is accepted only; ``tls.enabled`` → TLS. Retries are off: a failing Redis must
cost one short timeout, after which the callers go to the storage.

redis-py's Sentinel and single-server clients connect at first use; its Cluster client reads the
slot map in its constructor, so :class:`LazyCluster` defers that to first use too: a cluster
that is down when an instance starts costs that instance speed, not its start.
"""

from __future__ import annotations

import dataclasses
import threading
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


class LazyCluster(RedisCluster):
    """A :class:`RedisCluster` that connects (reads the slot map) at first use, not when made.

    Until then no instance attribute exists, so the first one asked for runs the real
    constructor; when the cluster cannot be reached that raises :class:`redis.ConnectionError`
    (what callers already treat as "Redis is down") and the next use tries again.
    """

    _lazy_kwargs: dict[str, Any]
    _lazy_lock: threading.RLock
    _lazy_busy: bool

    def __init__(self, **kwargs: Any) -> None:  # noqa: D107 - the class docstring says it
        self._lazy_kwargs = kwargs
        self._lazy_lock = threading.RLock()
        self._lazy_busy = False

    def __getattr__(self, name: str) -> Any:
        """Only called for a missing attribute: connect, then look it up again."""
        if name.startswith("_lazy"):
            raise AttributeError(name)
        with self._lazy_lock:
            if self._lazy_busy:  # the constructor itself probing an attribute it sets later
                raise AttributeError(name)
            if "nodes_manager" not in self.__dict__:
                self._lazy_busy = True
                try:
                    super().__init__(**self._lazy_kwargs)
                except redis.exceptions.RedisClusterException as exc:
                    raise redis.ConnectionError(f"Redis Cluster unreachable: {exc}") from exc
                finally:
                    self._lazy_busy = False
        return object.__getattribute__(self, name)

    def close(self) -> None:
        """Close the node connections, if any were opened."""
        if "nodes_manager" in self.__dict__:
            super().close()


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
        return LazyCluster(startup_nodes=nodes, ssl=settings.tls, **kwargs)
    host, port = settings.addrs[0]
    return redis.Redis(host=host, port=port, db=settings.db, ssl=settings.tls, **kwargs)
