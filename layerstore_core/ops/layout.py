"""The stored objects of a registry, as copy and verify see them: blobs and repository files.

Every file under ``blobs/`` and ``repositories/`` is an :class:`Entry` with a :class:`Kind`,
except the files of uploads in progress (``_uploads/``), which belong to the backend that
received them. Files the layout does not name (a referrers index kept under the repository, for
example) are :attr:`Kind.OTHER` and are copied as they are. The kinds are numbered in the order a
copy writes them, so that a registry reading the destination never finds a link before what it
names: blobs, layer links, manifest revisions, other files, tag history, current tags.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator

from ..driver import StorageDriver
from ..errors import PathNotFoundError
from ..registry import paths as p
from ..registry.errors import DigestInvalidError
from ..registry.names import validate_digest

BLOBS = f"{p.ROOT}/blobs"
REPOSITORIES = p.path_for(p.RepositoriesPath())


class Kind(enum.IntEnum):
    """What a stored file is; the value is its place in a copy's write order."""

    BLOB = 0
    LAYER_LINK = 1
    REVISION_LINK = 2
    OTHER = 3
    TAG_INDEX = 4
    TAG_CURRENT = 5


#: Links whose content is fixed by their path (the digest is in it), so equal size means equal.
PATH_DETERMINED = frozenset({Kind.LAYER_LINK, Kind.REVISION_LINK, Kind.TAG_INDEX})


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One stored file: its path, size and kind; ``repository`` for repository files.

    ``digest`` is what the path names: the blob's digest for blobs, the linked digest for
    layer, revision and tag-history links; None for current tags and other files.
    """

    path: str
    size: int
    kind: Kind
    repository: str | None = None
    digest: str | None = None
    tag: str | None = None


def _digest(alg: str, hex_: str) -> str | None:
    try:
        return validate_digest(f"{alg}:{hex_}")
    except DigestInvalidError:
        return None


def blob_entry(path: str, size: int) -> Entry:
    """The entry of a file under ``blobs/`` (``<alg>/<xx>/<hex>/data`` names a digest)."""
    parts = path[len(BLOBS) + 1 :].split("/")
    digest = None
    if len(parts) == 4 and parts[3] == "data" and parts[2][:2] == parts[1]:
        digest = _digest(parts[0], parts[2])
    return Entry(path, size, Kind.BLOB, digest=digest)


def repository_entry(path: str, size: int) -> Entry | None:
    """The entry of a file under ``repositories/``; None for files of uploads in progress."""
    parts = path[len(REPOSITORIES) + 1 :].split("/")
    # Repository name components never start with "_"; the first one that does ends the name.
    cut = next((i for i, part in enumerate(parts) if part.startswith("_")), len(parts))
    name, rest = "/".join(parts[:cut]), parts[cut:]
    match rest:
        case ["_uploads", *_]:
            return None
        case ["_layers", alg, hex_, "link"]:
            return Entry(path, size, Kind.LAYER_LINK, name, _digest(alg, hex_))
        case ["_manifests", "revisions", alg, hex_, "link"]:
            return Entry(path, size, Kind.REVISION_LINK, name, _digest(alg, hex_))
        case ["_manifests", "tags", tag, "index", alg, hex_, "link"]:
            return Entry(path, size, Kind.TAG_INDEX, name, _digest(alg, hex_), tag)
        case ["_manifests", "tags", tag, "current", "link"]:
            return Entry(path, size, Kind.TAG_CURRENT, name, None, tag)
        case _:
            return Entry(path, size, Kind.OTHER, name or None)


def _files(driver: StorageDriver, top: str) -> Iterator[tuple[str, int]]:
    try:
        for info in driver.walk(top):
            if not info.is_dir:
                yield info.path, info.size
    except PathNotFoundError:
        return


def scan_blobs(driver: StorageDriver) -> Iterator[Entry]:
    """Every file under ``blobs/``."""
    for path, size in _files(driver, BLOBS):
        yield blob_entry(path, size)


def scan_repositories(driver: StorageDriver, name: str | None = None) -> Iterator[Entry]:
    """Every file under ``repositories/`` (or one repository) except uploads in progress."""
    top = p.path_for(p.RepositoryPath(name)) if name else REPOSITORIES
    for path, size in _files(driver, top):
        entry = repository_entry(path, size)
        if entry is not None and (name is None or entry.repository == name):
            yield entry


def scan(driver: StorageDriver) -> Iterator[Entry]:
    """Blobs, then repository files."""
    yield from scan_blobs(driver)
    yield from scan_repositories(driver)
