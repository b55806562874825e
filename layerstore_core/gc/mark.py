"""Mark: which manifests are kept and which blobs they need.

Default mode marks what Distribution's ``garbage-collect`` marks: every manifest revision of
every repository, with its config and layers and, for indexes, every child manifest,
recursively. With ``delete_untagged`` the roots are the tagged manifests plus revisions younger
than the grace period (a push in progress links children before it tags their index); children
of a kept index are kept (unlike Distribution), and a referrer (a manifest whose ``subject``
is kept) is kept with its subject and collected with it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable

from ..driver import StorageDriver
from ..errors import PathNotFoundError
from ..registry import paths as p
from ..registry.errors import RegistryError
from ..registry.manifests import references, sniff_media_type
from ..registry.names import validate_digest
from .scan import RepoScan, parallel_map

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class ManifestRefs:
    """What one manifest needs (blobs, child manifests) and what it refers to (subject)."""

    blobs: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    subject: str | None = None


def parse_refs(content: bytes) -> ManifestRefs | None:
    """References of stored manifest JSON; None when it is not a manifest we understand."""
    try:
        doc = json.loads(content)
        kind = sniff_media_type(doc) if isinstance(doc, dict) else None
        if kind is None:
            return None
        blobs, children = references(doc, kind)
    except (ValueError, RegistryError):
        return None
    subject = doc.get("subject")
    subject_digest = None
    if isinstance(subject, dict):
        try:
            subject_digest = validate_digest(subject.get("digest"))
        except RegistryError:
            subject_digest = None
    return ManifestRefs(tuple(blobs), tuple(children), subject_digest)


class ManifestReader:
    """Reads manifests once per digest (a manifest shared by repositories is read once)."""

    def __init__(self, driver: StorageDriver, read: Callable[[int], None] | None = None) -> None:
        self._driver = driver
        self._refs: dict[str, ManifestRefs | None] = {}
        self._read = read
        #: Digests whose data was missing or not a manifest.
        self.unreadable: set[str] = set()

    def _fetch(self, digest: str) -> ManifestRefs | None:
        try:
            content = self._driver.get_content(p.path_for(p.BlobDataPath(digest)))
        except PathNotFoundError:
            return None
        return parse_refs(content)

    def load(self, digests: Iterable[str]) -> None:
        """Read the manifests not read yet, in parallel."""
        todo = sorted({d for d in digests if d not in self._refs})
        for digest, refs in parallel_map(self._fetch, todo):
            self._refs[digest] = refs
            if refs is None:
                self.unreadable.add(digest)
                log.warning("manifest %s is missing or unreadable; marking it only", digest)
            if self._read is not None:
                self._read(1)

    def get(self, digest: str) -> ManifestRefs:
        return self._refs.get(digest) or ManifestRefs()

    def loaded(self, digest: str) -> bool:
        """Whether the manifest was read (missing or unreadable ones count as read)."""
        return digest in self._refs


@dataclasses.dataclass
class MarkResult:
    """Marked blob digests (manifests included) and, per repository, the kept revisions."""

    marked: set[str] = dataclasses.field(default_factory=set)
    kept: dict[str, set[str]] = dataclasses.field(default_factory=dict)


def _closure(reader: ManifestReader, roots: Iterable[str]) -> set[str]:
    """Manifests reachable from ``roots`` through index children (reading as needed)."""
    seen: set[str] = set()
    frontier = set(roots)
    while frontier:
        reader.load(frontier)
        seen |= frontier
        frontier = {c for d in frontier for c in reader.get(d).children} - seen
    return seen


def kept_revisions(
    repo: RepoScan, reader: ManifestReader, delete_untagged: bool, cutoff: dt.datetime
) -> set[str]:
    """The revisions of ``repo`` that stay (all of them unless ``delete_untagged``)."""
    if not delete_untagged:
        return set(repo.revisions)
    reader.load(repo.revisions)  # every subject field is needed to find the referrers
    roots = set(repo.tags.values()) | {d for d, t in repo.revisions.items() if t >= cutoff}
    kept = _closure(reader, roots & set(repo.revisions))
    while True:  # referrers live with their subject
        referrers = {
            d for d in repo.revisions if d not in kept and reader.get(d).subject in kept
        }
        if not referrers:
            return kept & set(repo.revisions)
        kept |= _closure(reader, referrers)


def mark(
    repos: Iterable[RepoScan], reader: ManifestReader, delete_untagged: bool, cutoff: dt.datetime
) -> MarkResult:
    """Mark every blob that a kept manifest of any repository needs."""
    result = MarkResult()
    for repo in repos:
        kept = kept_revisions(repo, reader, delete_untagged, cutoff)
        result.kept[repo.name] = kept
        for digest in _closure(reader, kept):
            refs = reader.get(digest)
            result.marked.add(digest)
            result.marked.update(refs.blobs)
            result.marked.update(refs.children)
    return result
