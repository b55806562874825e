"""The conformance suite on the ``azure`` driver against Azurite.

``leftovers`` lists raw blobs under the test's root directory, including blobs that only have
staged (uncommitted) blocks, so an unfinished write the driver hides still fails the test.
"""

import pytest

from layerstore_core.testing import Backend, ConformanceSuite
from layerstore_core.testing.onewriter import WholePartRivalCases


class TestConformanceAzure(ConformanceSuite, WholePartRivalCases):
    @pytest.fixture
    def conformance_backend(self, backend_azure: Backend) -> Backend:
        return backend_azure
