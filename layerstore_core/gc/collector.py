"""One garbage collection run: retention, mark, plan, sweep, purge of stale uploads."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
import time
import uuid
from collections.abc import Sequence

from ..driver import StorageDriver
from ..registry import Registry
from ..registry.cache import RECENT_TTL_S
from ..registry.errors import ManifestUnknownError
from ..registry.leases import Lease, StorageLease
from .mark import ManifestReader, mark
from .plan import make_plan
from .report import GCReport, NoProgress, Progress
from .retention import RetentionPolicy, tags_to_delete
from .scan import RepoScan, read_tags, scan_blobs, scan_repositories
from .sweep import DELETE_THREADS, Sweeper

log = logging.getLogger(__name__)

DEFAULT_GRACE = dt.timedelta(hours=1)
DEFAULT_UPLOAD_AGE = dt.timedelta(hours=168)


def collect_garbage(
    target: Registry | StorageDriver,
    *,
    delete_untagged: bool = False,
    grace: dt.timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    retention: Sequence[RetentionPolicy] = (),
    purge_uploads_older_than: dt.timedelta | None = DEFAULT_UPLOAD_AGE,
    lease: Lease | None = None,
    progress: Progress | None = None,
) -> GCReport:
    """Delete what no kept manifest needs and nothing a push in progress relies on.

    Safe while registries serve pushes on the same storage (docs/DESIGN.md). Raises
    ``GCBusyError`` when another collector holds the lease; a dry run takes no lease and
    writes nothing.
    """
    registry = target if isinstance(target, Registry) else Registry(target)
    if grace.total_seconds() < RECENT_TTL_S and not dry_run:
        log.warning("gc grace %s is under %d s: pushes in progress may lose blobs, and servers "
                    "that just placed a blob may still vouch for its data (DESIGN §9, §11)",
                    grace, RECENT_TTL_S)
    show = progress or NoProgress()
    started = time.monotonic()
    cutoff = dt.datetime.now(dt.UTC) - grace
    report = GCReport(dry_run=dry_run, delete_untagged=delete_untagged,
                      grace_seconds=grace.total_seconds())
    held = lease or StorageLease(registry.driver, "gc")
    sweeper = Sweeper(registry, held, cutoff, report, show, run=uuid.uuid4().hex[:12])
    if not dry_run:
        held.acquire()
    try:
        repos = _scan(registry, sweeper, retention, dry_run, delete_untagged, report)
        show.phase("walking blobs")
        blobs = scan_blobs(registry.driver, lambda n: _tick(sweeper, dry_run, n))
        report.blobs_seen = len(blobs)
        reader = ManifestReader(registry.driver, lambda n: show.advance(n))
        show.phase("marking", report.manifests_seen)
        marked = mark(repos.values(), reader, delete_untagged, cutoff)
        report.unreadable_manifests = len(reader.unreadable)
        plan = make_plan(repos, blobs, marked, cutoff)
        if dry_run:
            report.blobs_deleted = sorted(plan.blobs)
            report.bytes_freed = sum(info.size for info in plan.blobs.values())
            report.manifests_deleted = sorted(plan.manifests)
            report.links_deleted = sum(len(names) for names in plan.links.values())
        else:
            try:
                sweeper.publish(plan)
                sweeper.rescue(plan, repos, reader, delete_untagged)
                with concurrent.futures.ThreadPoolExecutor(
                    DELETE_THREADS, thread_name_prefix="layerstore-gc-delete"
                ) as pool:
                    sweeper.delete(plan, pool, reader)
            finally:  # even after a failed batch: the cache never answers for what is gone
                registry.blobs_removed(report.blobs_deleted)
                sweeper.finish()
            report.blobs_deleted.sort()
            report.manifests_deleted.sort()
        if purge_uploads_older_than is not None:
            show.phase("purging stale uploads")
            report.uploads_purged = len(registry.purge_uploads(purge_uploads_older_than, dry_run))
    finally:
        if not dry_run:
            held.release()
    report.duration_seconds = time.monotonic() - started
    log.info("gc: %s", report.summary())
    return report


def _tick(sweeper: Sweeper, dry_run: bool, n: int) -> None:
    sweeper.progress.advance(n)
    if not dry_run:
        sweeper.keep_alive()


def _scan(
    registry: Registry, sweeper: Sweeper, retention: Sequence[RetentionPolicy], dry_run: bool,
    delete_untagged: bool, report: GCReport,
) -> dict[str, RepoScan]:
    """Walk the repositories, read the tags, and apply retention (untag) before marking.

    Tag contents matter only under ``delete_untagged`` (retention goes by the links' times).
    """
    sweeper.progress.phase("walking repositories")
    repos = scan_repositories(registry.driver, lambda n: _tick(sweeper, dry_run, n))
    if delete_untagged:
        read_tags(registry.driver, repos.values())
    report.repositories = len(repos)
    report.manifests_seen = sum(len(r.revisions) for r in repos.values())
    now = dt.datetime.now(dt.UTC)
    for name, tags in sorted(tags_to_delete(retention, repos.values(), now).items()):
        for tag in tags:
            if not dry_run:
                try:
                    registry.repository(name).tags.untag(tag)
                except ManifestUnknownError:
                    continue
            repos[name].tags.pop(tag, None)
            repos[name].tag_times.pop(tag, None)
            report.tags_deleted.append((name, tag))
    return repos
