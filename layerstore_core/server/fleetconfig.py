"""Config of a fleet: ``storage.cache.blobdescriptor``, the ``redis`` section, ``http.workers``.

Distribution's keys with Distribution's meaning (``redis.addr``, ``password``, ``db``, the three
timeouts, ``pool.*``, ``tls.enabled``; Distribution 3's ``addrs`` and ``mastername``); how they
map onto redis-py is in :mod:`layerstore_core.registry.redisconn`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..registry.redisconn import RedisSettings

CACHE_KINDS = ("inmemory", "redis")
_REDIS_KEYS = {"addr", "addrs", "mastername", "username", "password", "db", "dialtimeout",
               "readtimeout", "writetimeout", "pool", "tls"}

Section = Callable[[Any, str], dict[str, Any]]
Check = Callable[[Mapping[str, Any], str, set[str]], None]
Duration = Callable[[Any, str], float]


def _addr(value: Any, key: str, error: type[Exception]) -> tuple[str, int]:
    host, sep, port = str(value).rpartition(":")
    if not sep or not host or not port.isdecimal() or not port.isascii() \
            or not 0 < int(port) < 65536:
        raise error(f"{key}: expected host:port such as localhost:6379, got {value!r}")
    return host.strip("[]"), int(port)


def _int(value: Any, key: str, error: type[Exception]) -> int:
    if isinstance(value, bool) or not str(value).strip().isdecimal():
        raise error(f"{key}: expected an integer >= 0, got {value!r}")
    return int(str(value).strip())


def parse_cache(cache: dict[str, Any], check: Check, error: type[Exception]) -> str | None:
    """``storage.cache``: the blob-descriptor cache's kind, or None."""
    check(cache, "storage.cache", {"blobdescriptor", "blobdescriptorsize"})
    kind = cache.get("blobdescriptor")
    if kind in (None, ""):
        return None
    kind = str(kind).lower()
    if kind not in CACHE_KINDS:
        raise error(f"storage.cache.blobdescriptor: expected one of {CACHE_KINDS}, got {kind!r}")
    return kind


def parse_redis(raw: Any, section: Section, check: Check, duration: Duration,
                error: type[Exception]) -> RedisSettings | None:
    """The ``redis`` section (None when absent)."""
    if raw is None:
        return None
    sec = section(raw, "redis")
    check(sec, "redis", _REDIS_KEYS)
    d = RedisSettings()
    if "addrs" in sec:
        addrs = sec["addrs"]
        if isinstance(addrs, str):
            addrs = [a for a in addrs.split(",") if a.strip()]
        if not isinstance(addrs, list) or not addrs:
            raise error(f"redis.addrs: expected a list of host:port, got {sec['addrs']!r}")
        parsed = tuple(_addr(a, "redis.addrs", error) for a in addrs)
    else:
        parsed = (_addr(sec.get("addr", "localhost:6379"), "redis.addr", error),)
    pool = section(sec.get("pool"), "redis.pool")
    check(pool, "redis.pool", {"maxidle", "maxactive", "idletimeout"})
    tls = section(sec.get("tls"), "redis.tls")
    check(tls, "redis.tls", {"enabled"})

    def seconds(name: str, default: float) -> float:
        return duration(sec[name], f"redis.{name}") if name in sec else default

    return RedisSettings(
        addrs=parsed,
        mastername=str(sec["mastername"]) if sec.get("mastername") else None,
        username=str(sec["username"]) if sec.get("username") else None,
        password=str(sec["password"]) if sec.get("password") else None,
        db=_int(sec.get("db", 0), "redis.db", error),
        dialtimeout=seconds("dialtimeout", d.dialtimeout),
        readtimeout=seconds("readtimeout", d.readtimeout),
        writetimeout=seconds("writetimeout", d.writetimeout),
        maxidle=_int(pool["maxidle"], "redis.pool.maxidle", error) if "maxidle" in pool else None,
        maxactive=(_int(pool["maxactive"], "redis.pool.maxactive", error)
                   if "maxactive" in pool else None),
        idletimeout=(duration(pool["idletimeout"], "redis.pool.idletimeout")
                     if "idletimeout" in pool else 0.0),
        tls=str(tls.get("enabled", False)).lower() in ("true", "yes", "on", "1"),
    )


def parse_workers(value: Any, error: type[Exception]) -> int:
    """``http.workers``: processes sharing the port (1: this process serves)."""
    n = _int(value, "http.workers", error)
    if n < 1:
        raise error(f"http.workers: expected at least 1, got {value!r}")
    return n
