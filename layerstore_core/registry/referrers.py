"""The OCI 1.1 referrers index: which manifests of a repository name a digest as ``subject``.

The index lives in storage beside Distribution's layout (``_referrers/<alg>/<subject hex>/<alg>/
<hex>/link``, see :mod:`.paths`) and is kept by :class:`~.manifests.ManifestStore` when a manifest
is put or deleted, so a listing reads one subject's directory instead of every manifest. An
entry whose revision link is gone (a Distribution process or an old crash removed the manifest)
is skipped when listing, so the index can only ever hide nothing and show nothing extra.
"""

from __future__ import annotations

import json
from typing import Any

from ..driver import StorageDriver
from ..errors import PathNotFoundError
from . import paths as p
from .descriptor import read_link, write_link
from .errors import DigestInvalidError, ManifestInvalidError
from .names import validate_digest

#: Largest page a referrers listing returns (a ``Link`` header points at the next one).
MAX_PAGE = 1000


def subject_of(doc: dict[str, Any]) -> str | None:
    """The ``subject`` digest of parsed manifest JSON, None when it has none; bad → invalid."""
    subject = doc.get("subject")
    if subject is None:
        return None
    if not isinstance(subject, dict) or not isinstance(subject.get("mediaType"), str):
        raise ManifestInvalidError("subject must be a descriptor with a mediaType")
    size = subject.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestInvalidError("subject has an invalid size")
    try:
        return validate_digest(subject.get("digest"))
    except DigestInvalidError:
        raise ManifestInvalidError("subject has an invalid digest") from None


def referrer_descriptor(content: bytes, media_type: str, digest: str) -> dict[str, Any]:
    """The image-index entry for a referrer: its own ``artifactType``, else its config's type."""
    doc = json.loads(content)
    desc: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(content)}
    artifact_type = doc.get("artifactType")
    if not isinstance(artifact_type, str):
        config = doc.get("config")
        artifact_type = config.get("mediaType") if isinstance(config, dict) else None
    if isinstance(artifact_type, str) and artifact_type:
        desc["artifactType"] = artifact_type
    annotations = doc.get("annotations")
    if isinstance(annotations, dict) and annotations:
        desc["annotations"] = annotations
    return desc


class ReferrerIndex:
    """One repository's referrers index: add, remove, and the digests referring to a subject."""

    def __init__(self, driver: StorageDriver, name: str) -> None:
        self._driver = driver
        self.name = name

    def add(self, subject: str, digest: str) -> None:
        """Record that manifest ``digest`` refers to ``subject`` (idempotent)."""
        write_link(self._driver, p.path_for(p.ReferrerLinkPath(self.name, subject, digest)), digest)

    def remove(self, subject: str, digest: str) -> None:
        """Drop the entry (its directory); a missing entry is already done."""
        link = p.path_for(p.ReferrerLinkPath(self.name, subject, digest))
        try:
            self._driver.delete(link.rsplit("/", 1)[0])
        except PathNotFoundError:
            pass

    def digests(self, subject: str) -> list[str]:
        """Sorted digests of the entries recorded for ``subject`` (none: empty)."""
        root = p.path_for(p.ReferrersPath(self.name, validate_digest(subject)))
        found: list[str] = []
        try:
            algorithms = self._driver.list(root)
        except PathNotFoundError:
            return []
        for alg_dir in algorithms:
            alg = alg_dir.rsplit("/", 1)[-1]
            try:
                entries = self._driver.list(alg_dir)
            except PathNotFoundError:
                continue
            for entry in entries:
                digest = read_link(self._driver, entry + "/link")
                if digest == f"{alg}:{entry.rsplit('/', 1)[-1]}":
                    found.append(digest)
        return sorted(found)
