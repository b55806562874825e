"""The built-in backends: filesystem (in a temp dir) and inmemory."""

from __future__ import annotations

from pathlib import Path

import pytest

from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.testing import Backend

BACKENDS = ["filesystem", "inmemory"]
PROCESS_LOCAL = ["inmemory"]


@pytest.fixture
def backend_filesystem(tmp_path: Path) -> Backend:
    return Backend("filesystem", "filesystem", {"rootdirectory": str(tmp_path / "root")})


@pytest.fixture
def backend_inmemory() -> Backend:
    driver = InMemoryDriver()
    return Backend("inmemory", "inmemory", {}, cross_process=False, factory=lambda: driver)
