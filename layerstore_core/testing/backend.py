"""A handle on one configured storage backend, as test fixtures hand it out.

A test that needs a second process (resume an upload elsewhere) passes ``driver`` and
``params`` to the child, which calls ``load_driver(driver, **params)``. Backends that cannot be
shared across processes (``inmemory``) say so with ``cross_process=False``; such tests then use a
fresh driver object in the same process instead of a subprocess.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..discovery import load_driver
from ..driver import StorageDriver


@dataclasses.dataclass
class Backend:
    """One driver configuration, isolated for one test (its own root directory or prefix)."""

    id: str
    driver: str
    params: dict[str, Any]
    cross_process: bool = True
    #: How to build a driver for this backend; defaults to ``load_driver(driver, **params)``.
    factory: Callable[[], StorageDriver] | None = None
    #: Optional raw look at the backend, below the driver: names of everything stored there that
    #: the driver may hide (temp files, unfinished multipart uploads, ...). The conformance suite
    #: calls it before and after each test and fails on anything new, so hidden litter shows up.
    leftovers: Callable[[], list[str]] | None = None

    def make(self) -> StorageDriver:
        """Build a driver on this backend (a new object each call where ``cross_process``)."""
        if self.factory is not None:
            return self.factory()
        return load_driver(self.driver, **self.params)
