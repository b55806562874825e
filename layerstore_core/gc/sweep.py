"""Sweep: publish what may go, take a last look, then delete in batches, re-checking each blob.

Order (the safety argument is in docs/DESIGN.md, "Garbage collection"):

1. write the doomed digests (``_gc/doomed/<run>/<shard>``), then the sweep marker (``_gc/sweep``);
2. walk ``repositories/`` again: a link, revision or tag younger than the cutoff (or new since
   the first walk) spares what it reaches; shards are rewritten without the spared digests;
3. delete untagged manifests (``ManifestStore.delete_many``, a repository at a time), then
   blobs one shard at a time: look at the shard's data again (a stat per blob, or a walk of
   their directories or of ``blobs/<alg>``, whichever is fewer requests) and spare what is
   younger than the cutoff, delete the rest's data files in one ``delete_many``, then their
   links in another; drop each finished shard, which releases writers waiting on it;
4. remove the marker and the shards.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping

from ..driver import FileInfo, StorageDriver
from ..errors import PathNotFoundError
from ..registry import Registry
from ..registry import paths as p
from ..registry.errors import ManifestUnknownError
from ..registry.fence import SweepMarker, read_marker, shard_of
from ..registry.leases import Lease
from .mark import ManifestReader, _closure
from .plan import Plan, blob_dir
from .report import GCReport, Progress
from .scan import RepoScan, read_tags, scan_repositories

log = logging.getLogger(__name__)

#: Manifest deletes and re-check requests in flight at once.
DELETE_THREADS = 16


def _ignore_missing(fn: Callable[[], None]) -> bool:
    """Run a delete; False when there was nothing to delete."""
    try:
        fn()
    except (PathNotFoundError, ManifestUnknownError):
        return False
    return True


@dataclasses.dataclass
class Sweeper:
    """Deletes one plan while writers keep pushing; holds the lease throughout."""

    registry: Registry
    lease: Lease
    cutoff: dt.datetime
    report: GCReport
    progress: Progress
    run: str
    _renewed: float = dataclasses.field(default_factory=time.monotonic)
    _shards: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    #: ``blobs/<alg>`` → its data files, from the one walk that re-checks every shard of it.
    _listed: dict[str, dict[str, FileInfo]] = dataclasses.field(default_factory=dict)

    @property
    def driver(self) -> StorageDriver:
        return self.registry.driver

    # -- lease and marker -------------------------------------------------------------------

    def keep_alive(self, force: bool = False) -> None:
        """Renew the lease and the marker when a third of the lease time has gone by."""
        if force or time.monotonic() - self._renewed > self.lease.ttl / 3:
            self.lease.renew()
            self._renewed = time.monotonic()
            if self._shards:
                self._write_marker()

    def _write_marker(self) -> None:
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.lease.ttl)
        marker = SweepMarker(self.run, expires)
        self.driver.put_content(p.path_for(p.GCSweepPath()), marker.encode())

    # -- 1. publish -------------------------------------------------------------------------

    def publish(self, plan: Plan) -> None:
        """Doomed shards first, the marker after them: a writer that sees the marker sees them."""
        for digest in plan.doomed_digests():
            self._shards.setdefault(shard_of(digest), set()).add(digest)
        for shard, digests in sorted(self._shards.items()):
            self._write_shard(shard, digests)
        self.keep_alive(force=True)

    def _write_shard(self, shard: str, digests: set[str]) -> None:
        path = p.path_for(p.GCDoomedPath(self.run, shard))
        if digests:
            self.driver.put_content(path, "\n".join(sorted(digests)).encode("ascii"))
        else:
            self.driver.delete_many([path])

    def finish(self) -> None:
        """Remove our marker, then our shards (writers see no sweep from the marker on).

        A marker of another run (a collector that took over an expired lease) stays, and so do
        its shards.
        """
        marker = read_marker(self.driver)
        if marker is not None and marker.run == self.run:
            _ignore_missing(lambda: self.driver.delete(p.path_for(p.GCSweepPath())))
        doomed = p.path_for(p.GCDoomedPath(self.run, "x")).rsplit("/", 1)[0]
        _ignore_missing(lambda: self.driver.delete(doomed))
        self._shards.clear()

    # -- 2. last look -----------------------------------------------------------------------

    def rescue(
        self, plan: Plan, before: Mapping[str, RepoScan], reader: ManifestReader,
        delete_untagged: bool,
    ) -> None:
        """Spare what anything linked, pushed or tagged since the first walk reaches."""
        self.progress.phase("re-checking repositories")
        now = scan_repositories(self.driver, lambda n: self._seen(n))
        if delete_untagged:  # only a tag written since the cutoff can point somewhere new
            for repo in now.values():
                old = before.get(repo.name, RepoScan(repo.name))
                repo.tags = {t: d for t, d in old.tags.items()
                             if t in repo.tag_times and repo.tag_times[t] < self.cutoff}
            read_tags(self.driver, now.values(), only_new=True)
        spared: set[str] = set()
        for repo in now.values():
            old = before.get(repo.name, RepoScan(repo.name))
            spared |= {d for d, t in repo.layers.items()
                       if t >= self.cutoff or d not in old.layers}
            roots = {d for d, t in repo.revisions.items()
                     if t >= self.cutoff or d not in old.revisions}
            if delete_untagged:
                roots |= {d for t, d in repo.tags.items()
                          if repo.tag_times[t] >= self.cutoff or old.tags.get(t) != d}
            for digest in _closure(reader, roots):
                refs = reader.get(digest)
                spared |= {digest, *refs.blobs, *refs.children}
                plan.manifests.discard((repo.name, digest))
        self._spare(plan, spared & (plan.blobs.keys() | plan.links.keys()))

    def _seen(self, n: int) -> None:
        self.progress.advance(n)
        self.keep_alive()

    def _spare(self, plan: Plan, digests: Iterable[str]) -> None:
        changed: set[str] = set()
        for digest in digests:
            plan.blobs.pop(digest, None)
            plan.links.pop(digest, None)
            self.report.rescued += 1
            changed.add(shard_of(digest))
        still = plan.doomed_digests()
        for shard in sorted(changed):
            self._shards[shard] = {d for d in self._shards.get(shard, set()) if d in still}
            self._write_shard(shard, self._shards[shard])

    # -- 3. delete --------------------------------------------------------------------------

    def delete(self, plan: Plan, pool: concurrent.futures.ThreadPoolExecutor,
               reader: ManifestReader) -> None:
        """Untagged manifests, then blobs and their links one shard at a time."""
        self.progress.phase("deleting manifests", len(plan.manifests))
        by_repo: dict[str, list[str]] = {}
        for name, digest in sorted(plan.manifests):
            by_repo.setdefault(name, []).append(digest)

        def delete_manifests(item: tuple[str, list[str]]) -> None:
            name, digests = item
            subjects = {d: reader.get(d).subject for d in digests if reader.loaded(d)}
            self.registry.repository(name).manifests.delete_many(digests, subjects)

        for (name, digests), _ in zip(by_repo.items(), pool.map(delete_manifests,
                                                               by_repo.items()), strict=True):
            self.report.manifests_deleted.extend((name, d) for d in digests)
            self.progress.advance(len(digests))
        by_shard: dict[str, list[str]] = {}
        for digest in plan.links.keys() | plan.blobs.keys():
            by_shard.setdefault(shard_of(digest), []).append(digest)
        self.progress.phase("deleting blobs", len(plan.blobs))
        for shard, digests in sorted(by_shard.items()):
            self.keep_alive()
            self._delete_shard(plan, sorted(digests), pool)
            self._shards.pop(shard, None)
            self._write_shard(shard, set())  # releases the writers waiting on it

    def _delete_shard(self, plan: Plan, digests: list[str],
                      pool: concurrent.futures.ThreadPoolExecutor) -> None:
        """Re-check the shard's blobs, delete the data still old, then the links naming them.

        Both deletes are one ``delete_many`` each: on S3 a request per thousand files.
        """
        now = recheck(self.driver, [d for d in digests if d in plan.blobs], plan, pool,
                      self._listed)
        spared = {d for d, info in now.items() if info is not None and info.modified >= self.cutoff}
        self.report.rescued += len(spared)  # pushed again since the walk
        doomed = {d: info for d, info in now.items() if d not in spared and info is not None}
        # Counted first: after a failure partway, the cache still forgets every one of them.
        self.report.blobs_deleted.extend(sorted(doomed))
        self.driver.delete_many(info.path for info in doomed.values())
        for info in doomed.values():
            self.report.bytes_freed += info.size
            self.progress.advance(1, info.size)
        self.progress.advance(len(now) - len(doomed))
        links = [p.path_for(p.LayerLinkPath(name, d))
                 for d in digests if d not in spared for name in sorted(plan.links.get(d, ()))]
        self.driver.delete_many(links)
        self.report.links_deleted += len(links)


def recheck(driver: StorageDriver, digests: list[str], plan: Plan,
            pool: concurrent.futures.ThreadPoolExecutor,
            listed: dict[str, dict[str, FileInfo]]) -> dict[str, FileInfo | None]:
    """Each blob's data as it is now, in the fewest requests (a LIST returns a thousand keys).

    A ``stat`` per blob, a ``walk`` of each ``blobs/<alg>/<xx>`` directory holding one, or one
    ``walk`` of all of ``blobs/<alg>``, whichever the first walk's counts make cheapest. That
    last walk is made once and kept in ``listed`` for the algorithm's later shards: it is
    chosen only where the store is small enough to list in fewer requests than one shard's
    directories, so the sweep that follows is short.
    """
    if not digests:
        return {}
    dirs = sorted({blob_dir(d) for d in digests})
    algorithm_root = dirs[0].rsplit("/", 1)[0]
    if algorithm_root in listed:
        return {d: listed[algorithm_root].get(d.partition(":")[2]) for d in digests}
    per_dir = sum(plan.dir_sizes.get(d, 0) // 1000 + 1 for d in dirs)
    whole = sum(n for d, n in plan.dir_sizes.items() if d.startswith(algorithm_root + "/"))
    if len(digests) <= min(per_dir, whole // 1000 + 1):
        return dict(zip(digests, pool.map(functools.partial(_stat_data, driver), digests),
                        strict=True))
    if whole // 1000 + 1 < per_dir:
        found = listed[algorithm_root] = _data_files(driver, algorithm_root)
    else:
        found = {}
        for infos in pool.map(functools.partial(_data_files, driver), dirs):
            found.update(infos)
    return {d: found.get(d.partition(":")[2]) for d in digests}


def _data_files(driver: StorageDriver, root: str) -> dict[str, FileInfo]:
    """``hex → data`` of every blob below ``root`` (one flat listing on object stores)."""
    found: dict[str, FileInfo] = {}
    try:
        for info in driver.walk(root):
            if not info.is_dir and info.path.endswith("/data"):
                found[info.path.split("/")[-2]] = info
    except PathNotFoundError:
        pass
    return found


def _stat_data(driver: StorageDriver, digest: str) -> FileInfo | None:
    try:
        return driver.stat(p.path_for(p.BlobDataPath(digest)))
    except PathNotFoundError:
        return None
