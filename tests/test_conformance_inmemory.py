import pytest

from layerstore_core.testing import Backend, ConformanceSuite
from layerstore_core.testing.onewriter import WholePartRivalCases


class TestConformanceInMemory(ConformanceSuite, WholePartRivalCases):
    @pytest.fixture
    def conformance_backend(self, backend_inmemory: Backend) -> Backend:
        return backend_inmemory
