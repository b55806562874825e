import dataclasses
import os
from pathlib import Path

import pytest

from layerstore_core.testing import Backend, ConformanceSuite
from layerstore_core.testing.onewriter import WholePartRivalCases


def _everything_under(root: str) -> list[str]:
    """Every file on disk, temp files included: what the driver's listings may hide."""
    found = []
    for directory, _, files in os.walk(root):
        found.extend(os.path.join(directory, name) for name in files)
    return found


class TestConformanceFilesystem(ConformanceSuite, WholePartRivalCases):
    @pytest.fixture
    def conformance_backend(self, backend_filesystem: Backend) -> Backend:
        root = backend_filesystem.params["rootdirectory"]
        assert not Path(root).exists() or not any(Path(root).iterdir())
        return dataclasses.replace(backend_filesystem, leftovers=lambda: _everything_under(root))
