"""Sweep: publish what may go, take a last look, then delete in batches, re-checking each blob.

Order (the safety argument is in docs/DESIGN.md, "Garbage collection"):

1. write the doomed digests (``_gc/doomed/<run>/<shard>``), then the sweep marker (``_gc/sweep``);
2. walk ``repositories/`` again: a link, revision or tag younger than the cutoff (or new since
   the first walk) spares what it reaches; shards are rewritten without the spared digests;
3. delete untagged manifests (through ``ManifestStore.delete``), then blobs one
   ``blobs/<alg>/<xx>`` directory at a time, shard by shard: look at the data again (one walk of
   the directory, or a stat per blob) and spare what is younger than the cutoff, delete the
   rest's directories, then their links; drop each finished shard, which releases writers
   waiting on it;
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

#: Deletes in flight at once (the contract deletes one path per call).
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
            _ignore_missing(lambda: self.driver.delete(path))

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
        read_tags(self.driver, now.values())
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

    def delete(self, plan: Plan, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        """Untagged manifests, then blobs and their links one shard at a time."""
        self.progress.phase("deleting manifests", len(plan.manifests))
        for (name, digest), done in zip(
            sorted(plan.manifests),
            pool.map(lambda item: self._delete_manifest(*item), sorted(plan.manifests)),
            strict=True,
        ):
            if done:
                self.report.manifests_deleted.append((name, digest))
            self.progress.advance()
        batches: dict[str, list[str]] = {}
        for digest in plan.links.keys() | plan.blobs.keys():
            batches.setdefault(blob_dir(digest), []).append(digest)
        self.progress.phase("deleting blobs", len(plan.blobs))
        order = sorted(batches, key=lambda d: shard_of(batches[d][0]))
        for i, directory in enumerate(order):
            self.keep_alive()
            self._delete_batch(plan, directory, sorted(batches[directory]), pool)
            shard = shard_of(batches[directory][0])
            if i + 1 == len(order) or shard_of(batches[order[i + 1]][0]) != shard:
                self._shards.pop(shard, None)
                self._write_shard(shard, set())  # releases the writers waiting on it

    def _delete_manifest(self, name: str, digest: str) -> bool:
        return _ignore_missing(lambda: self.registry.repository(name).manifests.delete(digest))

    def _delete_batch(self, plan: Plan, directory: str, digests: list[str],
                      pool: concurrent.futures.ThreadPoolExecutor) -> None:
        """Re-check the batch's blobs, delete the data still old, then the links naming them."""
        blobs = [d for d in digests if d in plan.blobs]
        now = self._recheck(directory, blobs, plan.dir_sizes.get(directory, 0), pool)
        spared = {d for d, info in now.items() if info is not None and info.modified >= self.cutoff}
        self.report.rescued += len(spared)  # pushed again since the walk
        doomed = [(d, info) for d, info in now.items() if d not in spared]
        for (digest, info), gone in zip(doomed, pool.map(self._delete_data, doomed), strict=True):
            if gone and info is not None:
                self.report.blobs_deleted.append(digest)
                self.report.bytes_freed += info.size
            self.progress.advance(1, info.size if info else 0)
        links = [(name, d) for d in digests if d not in spared for name in plan.links.get(d, ())]
        self.report.links_deleted += sum(pool.map(lambda link: self._delete_link(*link), links))

    def _recheck(self, directory: str, digests: list[str], size: int,
                 pool: concurrent.futures.ThreadPoolExecutor) -> dict[str, FileInfo | None]:
        """Each blob's data as it is now: one walk of the directory or a stat per blob.

        Whichever is fewer requests: a LIST returns up to a thousand keys.
        """
        if len(digests) > size // 1000 + 1:
            found: dict[str, FileInfo] = {}
            try:
                for info in self.driver.walk(directory):
                    if not info.is_dir and info.path.endswith("/data"):
                        found[info.path.split("/")[-2]] = info
            except PathNotFoundError:
                pass
            return {d: found.get(d.partition(":")[2]) for d in digests}
        return dict(zip(digests, pool.map(self._stat_data, digests), strict=True))

    def _stat_data(self, digest: str) -> FileInfo | None:
        try:
            return self.driver.stat(p.path_for(p.BlobDataPath(digest)))
        except PathNotFoundError:
            return None

    def _delete_data(self, item: tuple[str, FileInfo | None]) -> bool:
        digest, info = item
        if info is None:
            return False
        remove = functools.partial(self.driver.delete, p.path_for(p.BlobPath(digest)))
        return _ignore_missing(remove)

    def _delete_link(self, name: str, digest: str) -> bool:
        return _ignore_missing(functools.partial(self.driver.delete, _link_dir(name, digest)))


def _link_dir(name: str, digest: str) -> str:
    """The ``_layers/<alg>/<hex>`` directory of a layer link (removed whole, left empty)."""
    return p.path_for(p.LayerLinkPath(name, digest)).rsplit("/", 1)[0]
