"""The registry: repositories on one storage driver, and the catalog of their names."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..driver import StorageDriver
from ..errors import PathNotFoundError
from . import paths as p
from .blobs import BlobStore
from .cache import BlobDescriptorCache
from .manifests import ManifestStore
from .names import validate_name
from .tags import TagStore, paginate
from .urlpolicy import OPEN, URLPolicy

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..gc import GCReport, Lease, Progress, RetentionPolicy
    from .purge import PurgedUpload


class Repository:
    """One repository: its ``blobs``, ``manifests`` and ``tags``."""

    def __init__(
        self, driver: StorageDriver, name: str, cache: BlobDescriptorCache | None = None,
        url_policy: URLPolicy = OPEN,
    ) -> None:
        self.name = validate_name(name)
        self.blobs = BlobStore(driver, name, cache)
        self.manifests = ManifestStore(driver, name, url_policy, cache)
        self.tags = TagStore(driver, name)

    def __repr__(self) -> str:
        return f"Repository({self.name!r})"


class Registry:
    """The blob and manifest service on a storage driver, in Distribution's v2 layout."""

    def __init__(self, driver: StorageDriver, cache: BlobDescriptorCache | None = None,
                 url_policy: URLPolicy = OPEN) -> None:
        self.driver = driver
        #: ``storage.cache.blobdescriptor``; None: every answer comes from the storage.
        self.cache = cache
        #: ``validation.manifests.urls``: what pushed layers' ``urls`` may be.
        self.url_policy = url_policy

    def repository(self, name: str) -> Repository:
        """Return repository ``name`` (validated; it need not exist yet — a push creates it)."""
        return Repository(self.driver, name, self.cache, self.url_policy)

    def blobs_removed(self, digests: Iterable[str]) -> None:
        """The one cache-invalidation hook for removed blob data (garbage collection calls it)."""
        if self.cache is not None:
            self.cache.forget_blobs(digests)

    def catalog(self, n: int | None = None, last: str | None = None) -> list[str]:
        """Repository names, sorted, after ``last``, at most ``n``.

        As in Distribution, a repository is a directory holding ``_manifests``.
        """
        return paginate(list(repository_names(self.driver, marker="_manifests")), n, last)

    def purge_uploads(self, older_than: dt.timedelta, dry_run: bool = False, *,
                      lease: Lease | None = None) -> list[PurgedUpload]:
        """Cancel uploads started more than ``older_than`` ago (see :func:`.purge_uploads`)."""
        from .purge import purge_uploads  # purge needs this module; import when called

        return purge_uploads(self.driver, older_than, dry_run, lease=lease)

    def collect_garbage(
        self,
        *,
        delete_untagged: bool = False,
        grace: dt.timedelta = dt.timedelta(hours=1),
        dry_run: bool = False,
        retention: Sequence[RetentionPolicy] = (),
        purge_uploads_older_than: dt.timedelta | None = dt.timedelta(hours=168),
        lease: Lease | None = None,
        progress: Progress | None = None,
    ) -> GCReport:
        """Collect what no kept manifest needs, online (see :func:`.gc.collect_garbage`)."""
        from ..gc import collect_garbage  # gc needs this module; import when called

        return collect_garbage(
            self, delete_untagged=delete_untagged, grace=grace, dry_run=dry_run,
            retention=retention, purge_uploads_older_than=purge_uploads_older_than,
            lease=lease, progress=progress,
        )


def repository_names(driver: StorageDriver, marker: str | None = None) -> list[str]:
    """Names of repository directories (those holding ``marker``, or any ``_`` child)."""
    root = p.path_for(p.RepositoriesPath())
    found: list[str] = []
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            children = driver.list(directory)
        except PathNotFoundError:
            continue
        names = [child.rsplit("/", 1)[-1] for child in children]
        if any(n == marker if marker else n.startswith("_") for n in names):
            found.append(directory[len(root) + 1 :])
        pending.extend(c for c, n in zip(children, names, strict=True) if not n.startswith("_"))
    return sorted(found)
