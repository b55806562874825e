"""What the collector sees of the store: one ``walk`` of ``repositories/`` and one of ``blobs/``.

``walk`` is a flat listing on object stores (a LIST per thousand keys, not per directory), and
it gives each link's modification time for free. Digests of layer and revision links come from
their paths; a damaged link is therefore counted as present, which only ever keeps more. Only
tag ``current`` links are read (their content is the digest), in parallel.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from ..driver import FileInfo, StorageDriver
from ..errors import PathNotFoundError
from ..registry import paths as p
from ..registry.descriptor import read_link
from ..registry.names import DIGEST_HEX_LENGTHS

#: Threads for reading links and manifests (object stores answer in parallel).
READ_THREADS = 16
_MARKERS = ("_layers", "_manifests", "_uploads")
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclasses.dataclass
class RepoScan:
    """One repository's links, with their modification times."""

    name: str
    layers: dict[str, dt.datetime] = dataclasses.field(default_factory=dict)
    revisions: dict[str, dt.datetime] = dataclasses.field(default_factory=dict)
    tag_times: dict[str, dt.datetime] = dataclasses.field(default_factory=dict)
    #: tag → digest, filled by :func:`read_tags`; tags whose link is unreadable are left out.
    tags: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class BlobInfo:
    """One blob's data object."""

    size: int
    modified: dt.datetime


def _digest(alg: str, hex_: str) -> str | None:
    if DIGEST_HEX_LENGTHS.get(alg) != len(hex_):
        return None
    return f"{alg}:{hex_}"


def _walk(driver: StorageDriver, root: str) -> Iterator[FileInfo]:
    try:
        yield from driver.walk(root)
    except PathNotFoundError:
        return


def scan_repositories(
    driver: StorageDriver, seen: Callable[[int], None] | None = None
) -> dict[str, RepoScan]:
    """Every repository's layer links, revision links and tag links, from one walk."""
    root = p.path_for(p.RepositoriesPath())
    repos: dict[str, RepoScan] = {}
    for info in _walk(driver, root):
        if seen is not None:
            seen(1)
        if info.is_dir or not info.path.endswith("/link"):
            continue
        parts = info.path[len(root) + 1 :].split("/")
        cut = next((i for i, part in enumerate(parts) if part in _MARKERS), None)
        if not cut:
            continue
        repo = repos.setdefault("/".join(parts[:cut]), RepoScan("/".join(parts[:cut])))
        _add_link(repo, parts[cut:], info.modified)
    return repos


def _add_link(repo: RepoScan, rest: list[str], modified: dt.datetime) -> None:
    match rest:
        case ["_layers", alg, hex_, "link"]:
            if digest := _digest(alg, hex_):
                repo.layers[digest] = modified
        case ["_manifests", "revisions", alg, hex_, "link"]:
            if digest := _digest(alg, hex_):
                repo.revisions[digest] = modified
        case ["_manifests", "tags", tag, "current", "link"]:
            repo.tag_times[tag] = modified
        case _:
            pass


def scan_blobs(
    driver: StorageDriver, seen: Callable[[int], None] | None = None
) -> dict[str, BlobInfo]:
    """Every blob's data object, from one walk of ``blobs/``."""
    root = f"{p.ROOT}/blobs"
    blobs: dict[str, BlobInfo] = {}
    for info in _walk(driver, root):
        if seen is not None:
            seen(1)
        if info.is_dir or not info.path.endswith("/data"):
            continue
        parts = info.path[len(root) + 1 :].split("/")
        if len(parts) == 4 and (digest := _digest(parts[0], parts[2])):
            blobs[digest] = BlobInfo(info.size, info.modified)
    return blobs


def parallel_map(fn: Callable[[_T], _R], items: Iterable[_T]) -> Iterator[tuple[_T, _R]]:
    """``(item, fn(item))`` for each item, computed on :data:`READ_THREADS` threads."""
    batch = list(items)
    if not batch:
        return
    with concurrent.futures.ThreadPoolExecutor(
        min(READ_THREADS, len(batch)), thread_name_prefix="layerstore-gc"
    ) as pool:
        yield from zip(batch, pool.map(fn, batch), strict=True)


def read_tags(driver: StorageDriver, repos: Iterable[RepoScan], only_new: bool = False) -> None:
    """Fill each repository's ``tags`` by reading the ``current`` links in parallel."""
    wanted = [
        (repo, tag)
        for repo in repos
        for tag in repo.tag_times
        if not (only_new and tag in repo.tags)
    ]

    def read(item: tuple[RepoScan, str]) -> str | None:
        return read_link(driver, p.path_for(p.ManifestTagCurrentPath(item[0].name, item[1])))

    for (repo, tag), digest in parallel_map(read, wanted):
        if digest is not None:
            repo.tags[tag] = digest
