"""Directories implied by flat key listings: the one algorithm every flat store uses.

Object stores (and the inmemory driver) keep only files; a directory exists while some file
lies below it (any key: an unfinished write's hidden state too, as a filesystem shows the
unfinished file). These functions turn flat listings into the contract's ``list`` children and
``walk`` entries: only names that are path components are entries (see
:func:`layerstore_core.driver.is_component`), and implied directories are dated :data:`EPOCH`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from ..driver import EPOCH, FileInfo, is_component, join_path, walk_order_key


def visible(relative: str) -> bool:
    """Whether a key relative to a listed directory names a contract path below it."""
    return all(is_component(part) for part in relative.split("/"))


def children(path: str, names: Iterable[str]) -> list[str]:
    """Absolute child paths of ``path`` from relative names (``a`` or prefixes ``a/``)."""
    found = {name.rstrip("/") for name in names}
    return [join_path(path, name) for name in found if is_component(name)]


def walk_entries(path: str, files: Iterable[tuple[str, int, dt.datetime]]) -> list[FileInfo]:
    """Every file and implied directory below ``path``, in the contract's walk order.

    ``files`` are ``(relative name, size, modified)``. A name that is not a contract path (a
    side object such as an unfinished write's state, a directory marker) is no entry, but the
    directories above it are: a directory exists while any key lies below it, the one rule
    ``list`` (a delimited listing's prefixes), ``stat`` and ``walk`` share.
    """
    entries: dict[str, FileInfo] = {}
    for relative, size, modified in files:
        parts = relative.split("/")
        for depth in range(1, len(parts)):
            if not is_component(parts[depth - 1]):
                break
            directory = join_path(path, "/".join(parts[:depth]))
            entries.setdefault(directory, FileInfo(directory, 0, EPOCH, True))
        if visible(relative):
            full = join_path(path, relative)
            entries[full] = FileInfo(full, size, modified, False)
    return sorted(entries.values(), key=lambda info: walk_order_key(info.path))
