import pytest

from layerstore_core.testing import Backend, ConformanceSuite
from layerstore_core.testing.claimedparts import ClaimedPartCases
from layerstore_core.testing.onewriter import WholePartRivalCases


class TestConformanceInMemory(ConformanceSuite, WholePartRivalCases, ClaimedPartCases):
    @pytest.fixture
    def conformance_backend(self, backend_inmemory: Backend) -> Backend:
        return backend_inmemory
