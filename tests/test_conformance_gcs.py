"""The conformance suite on the ``gcs`` driver, once per GCS emulator.

gcp-storage-emulator implements no preconditions (``ifGenerationMatch`` is ignored, so every
conditional create "succeeds"): the conditional-create part runs on fake-gcs-server, which
implements them as GCS does; every other part runs on both.
"""

import pytest

from layerstore_core.testing import SUITE_PARTS, Backend, ConformanceSuite
from layerstore_core.testing.conditional import ConditionalCases

_WITHOUT_PRECONDITIONS = tuple(part for part in SUITE_PARTS if part is not ConditionalCases)


class TestConformanceGCSEmulator(*_WITHOUT_PRECONDITIONS):  # type: ignore[misc]
    @pytest.fixture
    def conformance_backend(self, backend_gcs_emulator: Backend) -> Backend:
        return backend_gcs_emulator


class TestConformanceGCSFake(ConformanceSuite):
    @pytest.fixture
    def conformance_backend(self, backend_gcs_fake: Backend) -> Backend:
        return backend_gcs_fake
