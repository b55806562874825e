"""Directories implied by flat key listings: the one algorithm every flat store uses.

Object stores (and the inmemory driver) keep only files; a directory exists while some file
lies below it. These functions turn flat listings into the contract's ``list`` children and
``walk`` entries: only names that are path components count (see
:func:`layerstore_core.driver.is_component`), and implied directories are dated :data:`EPOCH`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from ..driver import EPOCH, FileInfo, is_component, join_path, walk_order_key

#: Marks a writer's side objects (state, fences, part claims): outside the path grammar.
SIDE_MARK = "~"


def is_side_key(key: str) -> bool:
    """Whether ``key`` is a writer's side object (``<key>~state``, ``~from~``, ``~parts~``)."""
    return SIDE_MARK in key.rsplit("/", 1)[-1]


def visible(relative: str) -> bool:
    """Whether a key relative to a listed directory names a contract path below it."""
    return all(is_component(part) for part in relative.split("/"))


def children(path: str, names: Iterable[str]) -> list[str]:
    """Absolute child paths of ``path`` from relative names (``a`` or prefixes ``a/``)."""
    found = {name.rstrip("/") for name in names}
    return [join_path(path, name) for name in found if is_component(name)]


def child_name(relative: str) -> str | None:
    """The child a key relative to a listed directory makes visible there, or None.

    Only a visible key counts (:func:`visible`): a side object (``x~state``, ``x~from~0``) or
    anything below a hidden component names no child, and neither do the directories above it.
    This is the one rule ``list`` and ``walk`` share.
    """
    return relative.split("/", 1)[0] if relative and visible(relative) else None


def child_names(relatives: Iterable[str]) -> set[str]:
    """The children visible keys (relative to a listed directory) make: :func:`child_name`."""
    return {name for name in map(child_name, relatives) if name is not None}


def walk_entries(path: str, files: Iterable[tuple[str, int, dt.datetime]]) -> list[FileInfo]:
    """Every file and implied directory below ``path``, in the contract's walk order.

    ``files`` are ``(relative name, size, modified)``; names that are not contract paths (side
    objects, markers) are dropped with everything below them.
    """
    entries: dict[str, FileInfo] = {}
    for relative, size, modified in files:
        if not visible(relative):
            continue
        parts = relative.split("/")
        for depth in range(1, len(parts)):
            directory = join_path(path, "/".join(parts[:depth]))
            entries.setdefault(directory, FileInfo(directory, 0, EPOCH, True))
        full = join_path(path, relative)
        entries[full] = FileInfo(full, size, modified, False)
    return sorted(entries.values(), key=lambda info: walk_order_key(info.path))
