"""The conformance suite on the ``gcs`` driver, once per GCS emulator."""

import pytest

from layerstore_core.testing import Backend, ConformanceSuite


class TestConformanceGCSEmulator(ConformanceSuite):
    @pytest.fixture
    def conformance_backend(self, backend_gcs_emulator: Backend) -> Backend:
        return backend_gcs_emulator


class TestConformanceGCSFake(ConformanceSuite):
    @pytest.fixture
    def conformance_backend(self, backend_gcs_fake: Backend) -> Backend:
        return backend_gcs_fake
