"""``put_content_if_absent`` on the built-in drivers (the cloud drivers adopt it with the suite)."""

import pytest

from layerstore_core.testing import Backend
from layerstore_core.testing.conditional import ConditionalCases


class TestConditionalFilesystem(ConditionalCases):
    @pytest.fixture
    def conformance_backend(self, backend_filesystem: Backend) -> Backend:
        return backend_filesystem


class TestConditionalInMemory(ConditionalCases):
    @pytest.fixture
    def conformance_backend(self, backend_inmemory: Backend) -> Backend:
        return backend_inmemory
