"""Expiry: drop cached tags and manifests past their upstream's ttl, through the registry.

Only content the cache fetched has records (see :mod:`.cache`), so pushed content is never
touched. A tag whose last revalidation is older than the ttl is untagged (when it still names
the digest the record saw); a cached manifest fetched longer ago than the ttl is deleted through
the manifest service unless a remaining tag, or a remaining index in its repository, still names
it. Blobs are never deleted here: once their manifests are gone, the garbage collection run that
follows the pass (:func:`expiry_loop`) reclaims the ones no other manifest (cached or pushed, in
any repository) references, so a shared layer stays (Distribution's expirer deleted blobs
outright, distribution issue 4191).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable

from ..errors import PathNotFoundError
from ..registry import Registry
from ..registry.errors import ManifestUnknownError, NameUnknownError
from ..registry.manifests import INDEX_TYPES
from . import cache
from .blobs import Run
from .config import ProxyConfig

#: Bounds of the interval between expiry passes (a quarter of the shortest ttl), seconds.
MIN_INTERVAL = 60.0
MAX_INTERVAL = 3600.0

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ExpiryReport:
    """What one pass dropped (or would drop, in a dry run)."""

    tags: list[str] = dataclasses.field(default_factory=list)
    manifests: list[str] = dataclasses.field(default_factory=list)


def expire_cache(registry: Registry, config: ProxyConfig, now: float | None = None,
                 dry_run: bool = False) -> ExpiryReport:
    """One expiry pass over every record; names no upstream claims any more are left alone."""
    now = time.time() if now is None else now
    report = ExpiryReport()
    records = list(cache.walk_records(registry.driver))
    for kind, name, key in records:
        route = config.route(name)
        if kind != "tag" or route is None:
            continue
        record = cache.read_tag(registry.driver, name, key)
        if record is None or now - record.checked <= route[0].ttl:
            continue
        report.tags.append(f"{name}:{key}")
        if not dry_run:
            tags = registry.repository(name).tags
            if tags.lookup(key) == record.digest:
                tags.untag(key)
            _drop(registry, cache.tag_record_path(name, key))
    for kind, name, key in records:
        route = config.route(name)
        if kind != "manifest" or route is None:
            continue
        fetched = cache.manifest_fetched(registry.driver, name, key)
        if fetched is None or now - fetched <= route[0].ttl or key in _live(registry, name):
            continue
        report.manifests.append(f"{name}@{key}")
        if not dry_run:
            try:
                registry.repository(name).manifests.delete(key)
            except ManifestUnknownError:
                pass
            _drop(registry, cache.manifest_record_path(name, key))
    log.info("proxy expiry: %d tag(s), %d manifest(s)%s", len(report.tags),
             len(report.manifests), " (dry run)" if dry_run else "")
    return report


def _live(registry: Registry, name: str) -> set[str]:
    """Digests a tag of ``name`` names, and the children of those that are indexes."""
    repo = registry.repository(name)
    live: set[str] = set()
    try:
        tags = repo.tags.list()
    except NameUnknownError:
        return live
    for tag in tags:
        digest = repo.tags.lookup(tag)
        if digest is None or digest in live:
            continue
        live.add(digest)
        try:
            manifest = repo.manifests.get(digest)
        except ManifestUnknownError:
            continue
        if manifest.media_type in INDEX_TYPES:
            doc = json.loads(manifest.content)
            live.update(str(m.get("digest")) for m in doc.get("manifests", []))
    return live


def _drop(registry: Registry, path: str) -> None:
    try:
        registry.driver.delete(path)
    except PathNotFoundError:
        pass


async def expiry_loop(registry: Registry, config: ProxyConfig, run: Run,
                      collect: Callable[[], Awaitable[bool]] | None = None) -> None:
    """Run :func:`expire_cache` forever, every quarter of the shortest ttl (within bounds).

    A pass that deleted manifests is followed by ``collect`` (a garbage collection run, which
    reclaims the blobs no remaining manifest references); one that could not run (another
    collector held the lease, or it failed) is retried after the next pass, so what expiry
    unreferenced is reclaimed even when no gc is scheduled.
    """
    shortest = min(u.ttl for u in config.upstreams)
    interval = min(MAX_INTERVAL, max(MIN_INTERVAL, shortest / 4))
    collect_due = False
    while True:
        await asyncio.sleep(interval)
        try:
            report = await run(expire_cache, registry, config)
            collect_due = collect_due or bool(report.manifests)
        except Exception:
            log.exception("proxy expiry failed")
        if collect_due and collect is not None:
            collect_due = not await collect()
