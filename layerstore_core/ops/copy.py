"""``layerstore copy``: copy a registry's layout from one backend to another, resumably.

The order is what keeps a registry serving the destination consistent at every moment:

1. Read every current tag of the source first (a snapshot of what the tags name).
2. List the source's blobs, then its repository files (uploads in progress left out), and the
   destination's files once; what the destination has with the same size is skipped, blobs
   re-hashed first with ``verify``.
3. Write kind by kind (:class:`~.layout.Kind`): blobs, layer links, manifest revisions, other
   files, tag history, then the tags from the snapshot — each kind finished before the next
   starts, ``jobs`` files at a time. Before a link is written, the blob it names must be in the
   destination (one pushed after the listing is copied then); before a tag, its revision link.

Everything the tags named at step 1 existed in full before steps 2 and 3 listed it, so a copy
that started while the source took pushes is consistent, and the next run brings what came
later. Nothing is deleted in the destination.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..driver import StorageDriver
from ..errors import LayerstoreError, PathNotFoundError, StorageDriverError
from ..progress import NoProgress, Progress
from ..registry import paths as p
from ..registry.errors import DigestInvalidError
from ..registry.names import validate_digest
from . import layout
from .layout import Entry, Kind
from .ratelimit import RateLimiter
from .transfer import SMALL, Staging, copy_file, rehash, same_store

log = logging.getLogger(__name__)


class CopyError(LayerstoreError):
    """The copy cannot start (for example, source and destination are one store)."""


@dataclasses.dataclass(frozen=True)
class CopyOptions:
    """How to copy: parallel ``jobs``, ``verify`` skipped blobs, ``dry_run``, a byte rate."""

    jobs: int = 4
    verify: bool = False
    dry_run: bool = False
    rate_limit: float | None = None


@dataclasses.dataclass
class CopyReport:
    """What a copy did (or, in a dry run, would do); ``failures`` are (path, error) pairs."""

    dry_run: bool = False
    copied_objects: int = 0
    copied_bytes: int = 0
    skipped_objects: int = 0
    skipped_bytes: int = 0
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "copied": {"objects": self.copied_objects, "bytes": self.copied_bytes},
            "skipped": {"objects": self.skipped_objects, "bytes": self.skipped_bytes},
            "failures": [{"path": path, "error": error} for path, error in self.failures],
            "seconds": round(self.seconds, 3),
        }


class _Copier:
    """One run of a copy; the sets below are shared by its jobs under ``_lock``."""

    def __init__(self, source: StorageDriver, dest: StorageDriver, options: CopyOptions,
                 progress: Progress) -> None:
        self.source, self.dest, self.options = source, dest, options
        self.report = CopyReport(dry_run=options.dry_run)
        self.limiter = RateLimiter(options.rate_limit)
        self.progress = progress
        self.staging: Staging | None = None
        self._lock = threading.Lock()
        self._dest_sizes: dict[str, int] = {}
        self._present: set[str] = set()  # destination paths known complete in this run
        self._failed: set[str] = set()  # source paths that could not be copied

    def run(self) -> CopyReport:
        start = time.monotonic()
        self.progress.phase("listing")
        tags = self._snapshot_tags()
        entries = [*layout.scan_blobs(self.source)]
        entries += [e for e in layout.scan_repositories(self.source) if e.kind != Kind.TAG_CURRENT]
        self._dest_sizes = {e.path: e.size for e in layout.scan(self.dest)}
        todo = [e for e in entries if self._dest_sizes.get(e.path) != e.size]
        # A dry run moves no bytes: its bar counts objects.
        self.progress.phase("counting" if self.options.dry_run else "copying",
                            len(entries) + len(tags),
                            total_bytes=None if self.options.dry_run else sum(e.size for e in todo))
        if not self.options.dry_run:
            self.staging = Staging(self.dest)
        try:
            for kind in Kind:
                if kind == Kind.TAG_CURRENT:
                    self._parallel(lambda t: self._sync_tag(*t), tags)
                else:
                    self._parallel(self._sync, [e for e in entries if e.kind == kind])
        finally:
            if self.staging is not None:
                self.staging.cleanup()
        self.report.seconds = time.monotonic() - start
        return self.report

    # -- listing ----------------------------------------------------------------------------

    def _snapshot_tags(self) -> list[tuple[Entry, bytes]]:
        """Every current tag link of the source with its content, read before anything else."""
        found = []
        for entry in layout.scan_repositories(self.source):
            if entry.kind == Kind.TAG_CURRENT:
                try:
                    found.append((entry, self.source.get_content(entry.path)))
                except PathNotFoundError:  # untagged meanwhile
                    continue
        return found

    def _parallel(self, job: Callable[[Any], None], items: Iterable[Any]) -> None:
        """Run ``job`` on every item, ``jobs`` at a time, at most twice that many queued."""
        jobs = max(1, self.options.jobs)
        with concurrent.futures.ThreadPoolExecutor(jobs, "layerstore-copy") as pool:
            pending: set[concurrent.futures.Future[None]] = set()
            for item in items:
                if len(pending) >= 2 * jobs:
                    done, pending = concurrent.futures.wait(
                        pending, return_when=concurrent.futures.FIRST_COMPLETED)
                    for future in done:
                        future.result()
                pending.add(pool.submit(job, item))
            for future in concurrent.futures.as_completed(pending):
                future.result()

    # -- one file ---------------------------------------------------------------------------

    def _sync(self, entry: Entry) -> None:
        """Bring one file to the destination unless it is there already; failures are noted."""
        try:
            if self._up_to_date(entry):
                self._count(entry.path, entry.size, copied=False)
                return
            if entry.kind in layout.PATH_DETERMINED and entry.digest is not None:
                if not self._ensure_blob(entry.digest):
                    self._fail(entry.path, f"names blob {entry.digest}, which is not copied")
                    return
            self._copy(entry.path, entry.size, entry.digest if entry.kind == Kind.BLOB else None)
        except PathNotFoundError:
            log.info("%s: gone from the source since it was listed", entry.path)
        except StorageDriverError as exc:
            self._fail(entry.path, str(exc))

    def _up_to_date(self, entry: Entry) -> bool:
        """Whether the destination holds this file already (same size; same content to check)."""
        if self._dest_sizes.get(entry.path) != entry.size:
            return False
        if entry.kind == Kind.BLOB:
            if self.options.verify and entry.digest is not None:
                got, _ = rehash(self.dest, entry.path, entry.digest.partition(":")[0],
                                self.limiter)
                if got != entry.digest:
                    log.warning("%s: destination copy is corrupt (%s); copying again",
                                entry.path, got)
                    return False
            return True
        if entry.kind in layout.PATH_DETERMINED and not self.options.verify:
            return True
        if entry.size > SMALL:  # large unknown files: same size counts as same
            return not self.options.verify
        return self.source.get_content(entry.path) == self._dest_content(entry.path)

    def _dest_content(self, path: str) -> bytes | None:
        try:
            return self.dest.get_content(path)
        except PathNotFoundError:
            return None

    def _sync_tag(self, entry: Entry, content: bytes) -> None:
        """Write a current tag from the snapshot once the manifest it names is in place."""
        try:
            if self._dest_content(entry.path) == content:
                self._count(entry.path, entry.size, copied=False)
                return
            digest = _link(content)
            if digest is None or entry.repository is None:
                self._fail(entry.path, "damaged tag link")
                return
            revision = p.path_for(p.ManifestRevisionLinkPath(entry.repository, digest))
            if not self._ensure_link(revision, digest):
                self._fail(entry.path, f"names manifest {digest}, which is not copied")
                return
            if not self.options.dry_run:
                self.dest.put_content(entry.path, content)
            self._count(entry.path, len(content), copied=True)
        except StorageDriverError as exc:
            self._fail(entry.path, str(exc))

    def _ensure_link(self, path: str, digest: str) -> bool:
        """Make sure the link at ``path`` (naming ``digest``) and its blob are in place."""
        if self._known(path):
            return True
        if not self._ensure_blob(digest):
            return False
        try:
            size = self.source.stat(path).size
        except PathNotFoundError:
            return False
        self._copy(path, size, None)
        return True

    def _ensure_blob(self, digest: str) -> bool:
        """Make sure blob ``digest`` is in the destination, copying it now if it came late."""
        path = p.path_for(p.BlobDataPath(digest))
        if self._known(path):
            return True
        with self._lock:
            if path in self._failed:
                return False
        try:
            size = self.source.stat(path).size
        except PathNotFoundError:
            return False
        try:
            self._copy(path, size, digest)
        except StorageDriverError as exc:
            self._fail(path, str(exc))
            return False
        return True

    def _known(self, path: str) -> bool:
        """Whether ``path`` is complete in the destination: copied or checked in this run."""
        with self._lock:
            if path in self._present:
                return True
        try:
            self.dest.stat(path)
        except PathNotFoundError:
            return False
        with self._lock:
            self._present.add(path)
        return True

    def _copy(self, path: str, size: int, digest: str | None) -> None:
        if not self.options.dry_run:
            copy_file(self.source, self.dest, path, size=size, digest=digest,
                      staging=self.staging, limiter=self.limiter,
                      progress=functools.partial(self.progress.advance, 0))
        self._count(path, size, copied=True)

    def _count(self, path: str, size: int, *, copied: bool) -> None:
        with self._lock:
            self._present.add(path)
            if copied:
                self.report.copied_objects += 1
                self.report.copied_bytes += size
            else:
                self.report.skipped_objects += 1
                self.report.skipped_bytes += size
        self.progress.advance()

    def _fail(self, path: str, error: str) -> None:
        log.error("copy %s: %s", path, error)
        with self._lock:
            self._failed.add(path)
            self.report.failures.append((path, error))


def _link(content: bytes) -> str | None:
    try:
        return validate_digest(content.decode("ascii"))
    except (UnicodeDecodeError, DigestInvalidError):
        return None


def copy_store(source: StorageDriver, dest: StorageDriver, options: CopyOptions | None = None,
               progress: Progress | None = None) -> CopyReport:
    """Copy everything but uploads in progress from ``source`` to ``dest`` (see the module)."""
    if same_store(source, dest):
        raise CopyError("source and destination are the same store")
    return _Copier(source, dest, options or CopyOptions(), progress or NoProgress()).run()
