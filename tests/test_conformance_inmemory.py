import pytest

from layerstore_core.testing import Backend, ConformanceSuite


class TestConformanceInMemory(ConformanceSuite):
    @pytest.fixture
    def conformance_backend(self, backend_inmemory: Backend) -> Backend:
        return backend_inmemory
