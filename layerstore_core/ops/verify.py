"""``layerstore verify``: re-hash stored blobs, check links, manifests and tags; repair blobs.

Checks, each a :class:`Problem` with the path it concerns:

- ``blob-corrupt``: a blob's content does not hash to the digest its path names;
- ``blob-missing``: a layer link, revision link or manifest names a blob with no data;
- ``link-invalid``: a link's content is not the digest its path names;
- ``manifest-invalid``: a revision's blob is not a manifest the registry could serve;
- ``manifest-reference-missing``: a manifest names a blob or child manifest that the
  repository cannot serve;
- ``tag-dangling``: a tag names a manifest that is not stored in its repository.

Re-hashing reads every blob (or a random ``sample``, or only the blobs one repository links);
the rest reads links and manifests only. :func:`repair` replaces corrupt and missing blobs from
another backend, each checked against its digest while it streams (nothing unchecked lands).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import json
import logging
import random
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..driver import StorageDriver
from ..errors import PathNotFoundError, StorageDriverError
from ..progress import NoProgress, Progress
from ..registry import paths as p
from ..registry.errors import ManifestInvalidError
from ..registry.manifests import references, sniff_media_type
from ..registry.registry import repository_names
from . import layout
from .layout import Entry, Kind
from .ratelimit import RateLimiter
from .transfer import Staging, copy_file, rehash

log = logging.getLogger(__name__)

#: Problems a blob copied from elsewhere can fix.
REPAIRABLE = frozenset({"blob-corrupt", "blob-missing"})


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in the store; ``digest`` is the blob or manifest concerned."""

    kind: str
    path: str
    detail: str
    digest: str | None = None
    repository: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclasses.dataclass
class VerifyCounters:
    """Running totals, shared with the server's scrub and readable by a metrics exporter."""

    blobs_checked: int = 0
    bytes_checked: int = 0
    problems_found: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def add(self, *, blobs: int = 0, nbytes: int = 0, problems: int = 0) -> None:
        with self.lock:
            self.blobs_checked += blobs
            self.bytes_checked += nbytes
            self.problems_found += problems


@dataclasses.dataclass
class VerifyReport:
    """What a verify found, and what a repair fixed."""

    problems: list[Problem] = dataclasses.field(default_factory=list)
    repaired: list[Problem] = dataclasses.field(default_factory=list)
    blobs_checked: int = 0
    bytes_checked: int = 0
    links_checked: int = 0
    manifests_checked: int = 0
    tags_checked: int = 0

    @property
    def unrepaired(self) -> list[Problem]:
        return [problem for problem in self.problems if problem not in self.repaired]

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": {"blobs": self.blobs_checked, "bytes": self.bytes_checked,
                        "links": self.links_checked, "manifests": self.manifests_checked,
                        "tags": self.tags_checked},
            "problems": [problem.as_dict() for problem in self.problems],
            "repaired": [problem.as_dict() for problem in self.repaired],
            "unrepaired": len(self.unrepaired),
        }


@dataclasses.dataclass(frozen=True)
class VerifyOptions:
    """What to check and how fast.

    ``repositories`` None means all; ``sample`` is a count (int) or a fraction in (0, 1] of the
    blobs to re-hash; ``rate_limit`` bounds the read rate in bytes/s.
    """

    repositories: tuple[str, ...] | None = None
    sample: int | float | None = None
    jobs: int = 4
    rate_limit: float | None = None
    rehash: bool = True


class _Verifier:
    def __init__(self, driver: StorageDriver, options: VerifyOptions,
                 counters: VerifyCounters | None, progress: Progress) -> None:
        self.driver, self.options = driver, options
        self.progress = progress
        self.counters = counters or VerifyCounters()
        self.limiter = RateLimiter(options.rate_limit)
        self.report = VerifyReport()
        self._lock = threading.Lock()
        self.blobs: dict[str, Entry] = {}

    def run(self, choose: Callable[[list[Entry]], list[Entry]]) -> VerifyReport:
        self.progress.phase("listing")
        self.blobs = {e.digest: e for e in layout.scan_blobs(self.driver) if e.digest}
        names = self.options.repositories or tuple(repository_names(self.driver))
        self.progress.phase("checking repositories", len(names))
        linked: set[str] = set()
        for name in names:
            linked |= self._check_repository(name)
            self.progress.advance()
        candidates = list(self.blobs.values())
        if self.options.repositories is not None:
            candidates = [e for e in candidates if e.digest in linked]
        if self.options.rehash:
            chosen = choose(candidates)
            self.progress.phase("re-hashing blobs", len(chosen),
                                total_bytes=sum(e.size for e in chosen))
            self._rehash_all(chosen)
        return self.report

    def _problem(self, problem: Problem) -> None:
        log.warning("verify: %s %s: %s", problem.kind, problem.path, problem.detail)
        with self._lock:
            self.report.problems.append(problem)
        self.counters.add(problems=1)

    # -- blobs ------------------------------------------------------------------------------

    def _rehash_all(self, entries: list[Entry]) -> None:
        with concurrent.futures.ThreadPoolExecutor(max(1, self.options.jobs),
                                                   "layerstore-verify") as pool:
            for future in [pool.submit(self._rehash, e) for e in entries]:
                future.result()

    def _rehash(self, entry: Entry) -> None:
        assert entry.digest is not None
        try:
            got, size = rehash(self.driver, entry.path, entry.digest.partition(":")[0],
                               self.limiter, functools.partial(self.progress.advance, 0))
        except PathNotFoundError:
            return  # deleted since the listing (garbage collection)
        except StorageDriverError as exc:
            self._problem(Problem("blob-corrupt", entry.path, f"unreadable: {exc}",
                                  entry.digest))
            return
        with self._lock:
            self.report.blobs_checked += 1
            self.report.bytes_checked += size
        self.counters.add(blobs=1, nbytes=size)
        self.progress.advance()
        if got != entry.digest:
            self._problem(Problem("blob-corrupt", entry.path, f"content hashes to {got}",
                                  entry.digest))

    # -- repositories -----------------------------------------------------------------------

    def _check_repository(self, name: str) -> set[str]:
        """Check one repository's links, manifests and tags; returns the digests it links."""
        entries = list(layout.scan_repositories(self.driver, name))
        layers: set[str] = set()
        revisions: set[str] = set()
        for entry in entries:
            if entry.kind in (Kind.LAYER_LINK, Kind.REVISION_LINK):
                digest = self._check_link(entry)
                if digest is not None:
                    (layers if entry.kind == Kind.LAYER_LINK else revisions).add(digest)
        for entry in entries:
            if entry.kind == Kind.REVISION_LINK and entry.digest in revisions:
                self._check_manifest(entry, layers, revisions)
            elif entry.kind == Kind.TAG_CURRENT:
                self._check_tag(entry, revisions)
        return layers | revisions

    def _check_link(self, entry: Entry) -> str | None:
        """The digest a layer or revision link validly holds (its path's); its blob must exist.

        A link whose blob has no data still counts as a link (``blob-missing`` is reported
        once, here, and a repair restores the data), so manifests naming it are not flagged.
        """
        with self._lock:
            self.report.links_checked += 1
        content = self._read(entry.path)
        if content is None:
            return None
        if entry.digest is None or content != entry.digest.encode():
            self._problem(Problem("link-invalid", entry.path,
                                  f"holds {content[:80]!r}", entry.digest, entry.repository))
            return None
        if entry.digest not in self.blobs:
            self._problem(Problem("blob-missing", entry.path, "the linked blob has no data",
                                  entry.digest, entry.repository))
        return entry.digest

    def _check_manifest(self, entry: Entry, layers: set[str], revisions: set[str]) -> None:
        digest = entry.digest
        assert digest is not None
        if digest not in self.blobs:
            return  # reported as blob-missing by the link check
        self.report.manifests_checked += 1
        blob = self.blobs[digest].path
        try:
            doc = json.loads(self.driver.get_content(blob))
            kind = sniff_media_type(doc) if isinstance(doc, dict) else None
            if kind is None:
                raise ManifestInvalidError("no media type")
            needed_blobs, children = references(doc, kind)
        except PathNotFoundError:
            return
        except (ValueError, ManifestInvalidError) as exc:  # JSON errors are ValueErrors
            self._problem(Problem("manifest-invalid", blob, str(exc), digest, entry.repository))
            return
        for need in needed_blobs:
            if need not in layers:
                self._problem(Problem("manifest-reference-missing", entry.path,
                                      f"names blob {need}", need, entry.repository))
        for child in children:
            if child not in revisions:
                self._problem(Problem("manifest-reference-missing", entry.path,
                                      f"names manifest {child}", child, entry.repository))

    def _check_tag(self, entry: Entry, revisions: set[str]) -> None:
        self.report.tags_checked += 1
        content = self._read(entry.path)
        if content is None:
            return
        digest = content.decode("ascii", "replace")
        if digest not in revisions:
            self._problem(Problem("tag-dangling", entry.path,
                                  f"tag {entry.tag} names {digest[:80]}, which is not stored",
                                  digest, entry.repository))

    def _read(self, path: str) -> bytes | None:
        try:
            return self.driver.get_content(path)
        except PathNotFoundError:
            return None


def sampler(sample: int | float | None, rng: random.Random | None = None
            ) -> Callable[[list[Entry]], list[Entry]]:
    """Choose all entries, ``sample`` of them (an int), or that fraction (a float in (0, 1])."""
    def choose(entries: list[Entry]) -> list[Entry]:
        if sample is None:
            return entries
        count = sample if isinstance(sample, int) else max(1, round(sample * len(entries)))
        return (rng or random.Random()).sample(entries, min(count, len(entries)))

    return choose


def verify_store(driver: StorageDriver, options: VerifyOptions | None = None, *,
                 counters: VerifyCounters | None = None, progress: Progress | None = None,
                 rng: random.Random | None = None) -> VerifyReport:
    """Check the store (see the module docstring); the report lists every problem found.

    ``progress`` is told the phases: listing, checking repositories, re-hashing blobs.
    """
    options = options or VerifyOptions()
    verifier = _Verifier(driver, options, counters, progress or NoProgress())
    return verifier.run(sampler(options.sample, rng))


def repair(driver: StorageDriver, source: StorageDriver, report: VerifyReport) -> VerifyReport:
    """Replace corrupt and missing blobs from ``source``, each checked against its digest."""
    digests = {pr.digest for pr in report.problems if pr.kind in REPAIRABLE and pr.digest}
    staging = Staging(driver)
    try:
        fixed = {d for d in digests if _repair_blob(driver, source, d, staging)}
    finally:
        staging.cleanup()
    report.repaired = [pr for pr in report.problems
                       if pr.kind in REPAIRABLE and pr.digest in fixed]
    return report


def _repair_blob(driver: StorageDriver, source: StorageDriver, digest: str,
                 staging: Staging) -> bool:
    path = p.path_for(p.BlobDataPath(digest))
    try:
        size = source.stat(path).size
        copy_file(source, driver, path, size=size, digest=digest, staging=staging)
    except StorageDriverError as exc:  # missing there too, or corrupt there too
        log.error("repair %s from the other store failed: %s", digest, exc)
        return False
    log.info("repaired %s from the other store", digest)
    return True


def count_by_kind(problems: Iterable[Problem]) -> dict[str, int]:
    """``{kind: count}`` for a summary line."""
    counts: dict[str, int] = {}
    for problem in problems:
        counts[problem.kind] = counts.get(problem.kind, 0) + 1
    return dict(sorted(counts.items()))
