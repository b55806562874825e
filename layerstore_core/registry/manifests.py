"""A repository's manifests: validated JSON stored as blobs and made visible by revision links.

Supported: OCI image manifest and index, Docker schema 2 manifest and manifest list. The media
type is not stored apart (the layout has no place for it): as Distribution does, ``get`` sniffs
it from the JSON ``mediaType`` field, and where that is absent (allowed for OCI only) from the
structure, which ``put`` checked against the media type it was given.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from ..driver import StorageDriver
from ..errors import PathNotFoundError
from . import paths as p
from .blobs import BlobStore
from .cache import BlobDescriptorCache
from .descriptor import blob_size, read_link, write_link
from .errors import (
    DigestInvalidError,
    ManifestBlobUnknownError,
    ManifestInvalidError,
    ManifestTooLargeError,
    ManifestUnknownError,
)
from .fence import wait_until_safe
from .names import TAG_PATTERN, is_digest_like, validate_digest, validate_tag
from .referrers import MAX_PAGE, ReferrerIndex, referrer_descriptor, subject_of
from .tags import TagStore
from .urlpolicy import OPEN, URLPolicy

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
#: A manifest is held in memory whole (as every registry does); this bounds it.
MAX_MANIFEST_SIZE = 4 * 2**20
#: Content types that say nothing, so the JSON decides.
_UNSPECIFIC_TYPES = frozenset({"", "application/json", "application/octet-stream"})


class Manifest(NamedTuple):
    """A manifest as stored: exact bytes, media type, digest."""

    content: bytes
    media_type: str
    digest: str


def sniff_media_type(doc: dict[str, Any]) -> str | None:
    """Return the media type of parsed manifest JSON: its ``mediaType``, else its OCI structure."""
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if doc.get("schemaVersion") == 2:
        if "manifests" in doc:
            return OCI_INDEX
        if "config" in doc or "layers" in doc:
            return OCI_MANIFEST
    return None


def _parse(content: bytes, media_type: str | None) -> tuple[dict[str, Any], str]:
    """Decode and type-check a manifest; returns the JSON and its media type."""
    if len(content) > MAX_MANIFEST_SIZE:
        raise ManifestTooLargeError(f"manifest larger than {MAX_MANIFEST_SIZE} bytes")
    try:
        doc = json.loads(content)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestInvalidError(f"manifest is not valid JSON: {exc}") from None
    except RecursionError:
        raise ManifestInvalidError("manifest JSON is nested too deeply") from None
    if not isinstance(doc, dict):
        raise ManifestInvalidError("manifest JSON must be an object")
    if doc.get("schemaVersion") != 2:
        raise ManifestInvalidError("only schemaVersion 2 manifests are supported")
    sniffed = sniff_media_type(doc)
    given = (media_type or "").split(";", 1)[0].strip()
    if "mediaType" not in doc and given in (DOCKER_MANIFEST, DOCKER_LIST):
        raise ManifestInvalidError(f"{given} requires a mediaType field")
    if given not in _UNSPECIFIC_TYPES and sniffed != given:
        raise ManifestInvalidError(f"mediaType {sniffed!r} does not match {given!r}")
    if sniffed not in IMAGE_TYPES | INDEX_TYPES:
        raise ManifestInvalidError(f"unsupported manifest media type {sniffed!r}")
    return doc, sniffed


def _descriptor_digest(desc: object, where: str) -> str:
    if not isinstance(desc, dict):
        raise ManifestInvalidError(f"{where} must be a descriptor object")
    size = desc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestInvalidError(f"{where} has an invalid size")
    if not isinstance(desc.get("mediaType"), str):
        raise ManifestInvalidError(f"{where} has no mediaType")
    try:
        return validate_digest(desc.get("digest"))
    except DigestInvalidError:
        raise ManifestInvalidError(f"{where} has an invalid digest") from None


def references(doc: dict[str, Any], media_type: str) -> tuple[list[str], list[str]]:
    """(blob digests, child manifest digests) a manifest needs in its repository."""
    if media_type in INDEX_TYPES:
        children = doc.get("manifests")
        if not isinstance(children, list):
            raise ManifestInvalidError("index needs a manifests list")
        return [], [_descriptor_digest(c, f"manifests[{i}]") for i, c in enumerate(children)]
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ManifestInvalidError("manifest needs a layers list")
    blobs = [_descriptor_digest(doc.get("config"), "config")]
    for i, layer in enumerate(layers):
        digest = _descriptor_digest(layer, f"layers[{i}]")
        if not layer.get("urls"):  # foreign layers live elsewhere, as Distribution allows
            blobs.append(digest)
    return blobs, []


class PutResult(NamedTuple):
    """What storing a manifest did: its digest and the ``subject`` it refers to, if any."""

    digest: str
    subject: str | None


class ManifestStore:
    """Manifests of one repository: put, get (by digest or tag), exists, delete, referrers.

    This is the one place that keeps the referrers index: ``put`` adds the entry of a manifest
    with a ``subject`` and ``delete`` removes it, so every caller (the HTTP API, garbage
    collection) that goes through this service keeps the index right.
    """

    def __init__(self, driver: StorageDriver, name: str, url_policy: URLPolicy = OPEN,
                 cache: BlobDescriptorCache | None = None) -> None:
        self._driver = driver
        self.name = name
        #: What the ``urls`` of a pushed manifest's layers may be (``validation.manifests``).
        self.url_policy = url_policy
        #: The blob-descriptor cache the reference checks ask, as a blob ``stat`` does.
        self._cache = cache
        self._referrers = ReferrerIndex(driver, name)

    def put(
        self, content: bytes, media_type: str | None, tag: str | None = None,
        tags: Sequence[str] = (), *, check_references: bool = True,
    ) -> str:
        """Validate and store a manifest (and tag it with ``tag`` and each of ``tags``).

        ``check_references=False`` is for the pull-through cache, which stores a manifest before
        the blobs it names (they are fetched when a client asks for them).
        """
        return self.store(content, media_type, [*([tag] if tag is not None else []), *tags],
                          check_references=check_references).digest

    def store(self, content: bytes, media_type: str | None, tags: Sequence[str] = (), *,
              check_references: bool = True) -> PutResult:
        """:meth:`put`, also saying which ``subject`` the manifest refers to (``OCI-Subject``).

        Every tag is checked before anything is written, so a bad one stores nothing. The
        referrers entry is written after the revision link: a crash between them leaves a
        manifest that a repeated put (which clients do on failure) indexes.
        """
        for tag in tags:
            validate_tag(tag)
        content = bytes(content)
        doc, kind = _parse(content, media_type)
        subject = subject_of(doc)
        refs = references(doc, kind)
        if check_references:  # not for the pull-through cache: upstream content is as it is
            for i, layer in enumerate(doc["layers"] if kind in IMAGE_TYPES else []):
                self.url_policy.check(layer, f"layers[{i}]")
            self._check_references(*refs)
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        # Always written (one PUT, where comparing a stored copy costs a HEAD and a GET): the
        # bytes hash to their name, so rewriting them replaces a damaged copy and nothing else.
        self._driver.put_content(p.path_for(p.BlobDataPath(digest)), content)
        revision = p.path_for(p.ManifestRevisionLinkPath(self.name, digest))
        write_link(self._driver, revision, digest)
        unique = list(dict.fromkeys(tags))
        store = TagStore(self._driver, self.name)
        for tag in unique:
            store.link(tag, digest)
        # Every link is written: one look at the sweep marker covers them all (GC's fence).
        live = [digest, *refs[0], *refs[1]] if check_references else [digest] if unique else []
        if wait_until_safe(self._driver, live):
            self._recheck_after_sweep(content, digest, revision, unique, *refs,
                                      check_references=check_references)
        if subject is not None:
            self._referrers.add(subject, digest)
        return PutResult(digest, subject)

    def _recheck_after_sweep(
        self, content: bytes, digest: str, revision: str, tags: list[str],
        blobs: list[str], children: list[str], *, check_references: bool,
    ) -> None:
        """A sweep ran while we linked: restore our own data, or undo the links if a blob went.

        Then each tag is checked as a tag write checks it: one whose manifest the sweep
        collected is removed (MANIFEST_UNKNOWN). Without reference checks (the pull-through
        cache) only the tags are checked.
        """
        store = TagStore(self._driver, self.name)
        if check_references:
            blob = p.path_for(p.BlobDataPath(digest))
            if blob_size(self._driver, blob) != len(content):
                self._driver.put_content(blob, content)
            try:
                self._check_references(blobs, children, cached=False)
            except ManifestBlobUnknownError:
                for tag in tags:
                    with contextlib.suppress(ManifestUnknownError):
                        store.untag(tag)
                try:
                    self._driver.delete(revision)
                except PathNotFoundError:
                    pass
                raise
        for tag in tags:
            store.recheck(tag, digest)

    def _check_references(self, blobs: list[str], children: list[str], *,
                          cached: bool = True) -> None:
        """Every reference is visible here; else ManifestBlobUnknownError naming the missing.

        A blob is checked as its ``stat`` does, so the cache answers what it knows (the
        in-memory one a size: the link is still read). ``cached=False`` after a sweep ran: it
        may have deleted data a cache still knows, so only the storage answers.
        """
        blob_store = BlobStore(self._driver, self.name, self._cache if cached else None)
        missing = [d for d in blobs if not blob_store.exists(d)]
        missing += [d for d in children if not self._child_present(d)]
        if missing:
            raise ManifestBlobUnknownError(
                f"{len(missing)} referenced blob(s) unknown to {self.name}: {missing[0]}",
                detail=[{"digest": d} for d in missing],
            )

    def _child_present(self, digest: str) -> bool:
        return (
            self.exists(digest)
            and blob_size(self._driver, p.path_for(p.BlobDataPath(digest))) is not None
        )

    def resolve(self, reference: str) -> str:
        """Return the digest a tag or digest names here; unknown → ManifestUnknownError."""
        if is_digest_like(reference):
            digest = validate_digest(reference)
        else:
            digest = TagStore(self._driver, self.name).get(reference)
        if (
            read_link(self._driver, p.path_for(p.ManifestRevisionLinkPath(self.name, digest)))
            != digest
        ):
            raise ManifestUnknownError(f"manifest {reference} unknown to {self.name}")
        return digest

    def get(self, reference: str) -> Manifest:
        """``(content, media_type, digest)`` of a manifest by digest or tag."""
        digest = self.resolve(reference)
        try:
            content = self._driver.get_content(p.path_for(p.BlobDataPath(digest)))
        except PathNotFoundError:
            raise ManifestUnknownError(f"manifest {digest} data is missing") from None
        try:
            doc = json.loads(content)
        except (ValueError, RecursionError):
            doc = {}
        kind = sniff_media_type(doc) if isinstance(doc, dict) else None
        return Manifest(content, kind or OCI_MANIFEST, digest)

    def exists(self, reference: str) -> bool:
        """Whether the manifest (by digest or tag) is visible in this repository."""
        try:
            self.resolve(reference)
        except ManifestUnknownError:
            return False
        return True

    def delete(self, digest: str) -> None:
        """Unlink a manifest revision, its tags (as Distribution), tag history and referrers entry.

        The one way manifests are deleted (the API and garbage collection, through
        :meth:`delete_many`), so that anything kept about a manifest elsewhere is cleaned up in
        one place.
        """
        validate_digest(digest)
        self.resolve(digest)
        self.delete_many([digest])

    def delete_many(
        self, digests: Iterable[str], subjects: Mapping[str, str | None] | None = None
    ) -> None:
        """Delete revisions as :meth:`delete` does, in a few requests for all of them.

        Revisions already gone are fine. ``subjects`` (digest → its ``subject``, for a caller
        that has read the manifests) saves reading each one again. One walk of the tags finds
        the tag-history entries and each tag's ``current`` link is read once; referrers entries,
        history entries and revision links then go in one ``delete_many`` each, in this order:
        a crash after the referrers entries leaves manifests still there but not listed, and a
        repeated DELETE finishes the job.
        """
        doomed = sorted({validate_digest(d) for d in digests})
        if not doomed:
            return
        known = subjects or {}
        found = {d: known[d] if d in known else self._subject_of_stored(d) for d in doomed}
        self._driver.delete_many(p.path_for(p.ReferrerLinkPath(self.name, subject, d))
                                 for d, subject in found.items() if subject is not None)
        names, history = self._tag_entries(set(doomed))
        tags = TagStore(self._driver, self.name)
        for tag in names:
            if tags.lookup(tag) in found:
                try:
                    tags.untag(tag)
                except ManifestUnknownError:  # moved or removed meanwhile
                    pass
        self._driver.delete_many(history)
        self._driver.delete_many(p.path_for(p.ManifestRevisionLinkPath(self.name, d))
                                 for d in doomed)

    def _tag_entries(self, digests: set[str]) -> tuple[list[str], list[str]]:
        """Tag names, and the tag-history ``link`` files naming one of ``digests`` (one walk)."""
        root = p.path_for(p.ManifestTagsPath(self.name))
        names: set[str] = set()
        history: list[str] = []
        try:
            for info in self._driver.walk(root):
                parts = info.path[len(root) + 1 :].split("/")
                names.add(parts[0])
                if (not info.is_dir and len(parts) == 5 and parts[1] == "index"
                        and parts[4] == "link" and f"{parts[2]}:{parts[3]}" in digests):
                    history.append(info.path)
        except PathNotFoundError:
            pass
        return sorted(n for n in names if TAG_PATTERN.fullmatch(n)), history

    def _subject_of_stored(self, digest: str) -> str | None:
        try:
            doc = json.loads(self._driver.get_content(p.path_for(p.BlobDataPath(digest))))
            return subject_of(doc) if isinstance(doc, dict) else None
        except (PathNotFoundError, ValueError, ManifestInvalidError):
            return None

    def referrers(
        self, subject: str, artifact_type: str | None = None, n: int = MAX_PAGE,
        last: str | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Descriptors of manifests whose ``subject`` is ``subject``, sorted by digest.

        At most ``n`` after the digest ``last``, filtered by ``artifact_type``; the flag says
        whether more follow. An unknown subject has none (an empty list, not an error).
        """
        found: list[dict[str, Any]] = []
        for digest in self._referrers.digests(subject):
            if last is not None and digest <= last:
                continue
            try:
                manifest = self.get(digest)
            except ManifestUnknownError:  # entry outlived its manifest: never list it
                continue
            desc = referrer_descriptor(*manifest)
            if artifact_type is not None and desc.get("artifactType") != artifact_type:
                continue
            if len(found) == n:
                return found, True
            found.append(desc)
        return found, False
