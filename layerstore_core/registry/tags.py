"""A repository's tags: ``tags/<tag>/current/link`` plus an index of what each tag has named."""

from __future__ import annotations

from ..driver import StorageDriver
from ..errors import PathNotFoundError
from . import paths as p
from .descriptor import read_link, write_link
from .errors import (
    ManifestUnknownError,
    NameUnknownError,
    PaginationNumberInvalidError,
    TagInvalidError,
)
from .fence import wait_until_safe
from .names import validate_digest, validate_tag


def paginate(names: list[str], n: int | None, last: str | None) -> list[str]:
    """Sorted ``names`` after ``last``, at most ``n`` of them (the OCI list pagination)."""
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
        raise PaginationNumberInvalidError(
            f"page size must be a non-negative int, not {n!r}", detail={"n": repr(n)}
        )
    ordered = sorted(names)
    if last is not None:
        ordered = [name for name in ordered if name > last]
    return ordered if n is None else ordered[:n]


class TagStore:
    """Tags of one repository: list, get, tag, untag."""

    def __init__(self, driver: StorageDriver, name: str) -> None:
        self._driver = driver
        self.name = name

    def list(self, n: int | None = None, last: str | None = None) -> list[str]:
        """Tag names, sorted, after ``last``, at most ``n``; unknown repository → NameUnknown."""
        try:
            children = self._driver.list(p.path_for(p.ManifestTagsPath(self.name)))
        except PathNotFoundError:
            try:
                self._driver.stat(p.path_for(p.RepositoryPath(self.name)))
            except PathNotFoundError:
                raise NameUnknownError(f"repository {self.name} unknown") from None
            children = []
        return paginate([c.rsplit("/", 1)[-1] for c in children], n, last)

    def lookup(self, tag: str) -> str | None:
        """Return the digest ``tag`` points at, or None."""
        validate_tag(tag)
        return read_link(self._driver, p.path_for(p.ManifestTagCurrentPath(self.name, tag)))

    def get(self, tag: str) -> str:
        """Return the digest ``tag`` points at; unknown tag → ManifestUnknownError.

        A tag the grammar rejects cannot exist, so it is unknown too (OCI: 404 on GET, HEAD
        and DELETE; only storing a bad tag is TAG_INVALID).
        """
        try:
            digest = self.lookup(tag)
        except TagInvalidError:
            digest = None
        if digest is None:
            raise ManifestUnknownError(f"tag {tag} unknown to {self.name}", detail={"tag": tag})
        return digest

    def tag(self, tag: str, digest: str) -> None:
        """Point ``tag`` at a manifest of this repository (index link first, then current)."""
        validate_tag(tag)
        validate_digest(digest)
        revision = p.path_for(p.ManifestRevisionLinkPath(self.name, digest))
        if read_link(self._driver, revision) != digest:
            raise ManifestUnknownError(f"manifest {digest} unknown to {self.name}")
        self.link(tag, digest)
        if wait_until_safe(self._driver, [digest]):
            self.recheck(tag, digest)

    def link(self, tag: str, digest: str) -> None:
        """Write the tag's links (index entry, then current) for a manifest known to be here.

        For a caller that has just written the revision link itself (a manifest PUT); it then
        calls :func:`.fence.wait_until_safe` once for everything it linked, and :meth:`recheck`
        when that says a sweep ran.
        """
        write_link(
            self._driver, p.path_for(p.ManifestTagIndexEntryPath(self.name, tag, digest)), digest
        )
        write_link(self._driver, p.path_for(p.ManifestTagCurrentPath(self.name, tag)), digest)

    def recheck(self, tag: str, digest: str) -> None:
        """After a sweep: a tag whose manifest was collected is removed (MANIFEST_UNKNOWN)."""
        revision = p.path_for(p.ManifestRevisionLinkPath(self.name, digest))
        if read_link(self._driver, revision) != digest:
            self.untag(tag)  # a sweep deleted the untagged manifest before it saw the tag
            raise ManifestUnknownError(f"manifest {digest} was collected; push it again")

    def untag(self, tag: str) -> None:
        """Remove the tag (its whole directory); unknown tag → ManifestUnknownError."""
        self.get(tag)
        try:
            self._driver.delete(p.path_for(p.ManifestTagPath(self.name, tag)))
        except PathNotFoundError:
            pass
