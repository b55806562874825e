"""The conformance suite on the ``gcs`` driver, once per GCS emulator.

gcp-storage-emulator implements no preconditions (``ifGenerationMatch`` is ignored, so every
conditional create "succeeds"): the conditional-create and one-writer parts run on fake-gcs-server,
which implements them as GCS does (with ``WholePartRivalCases``: writes there are segmented, one
object per writer session composed at commit); every other part runs on both.
"""

import pytest

from layerstore_core.testing import SUITE_PARTS, Backend, ConformanceSuite
from layerstore_core.testing.conditional import ConditionalCases
from layerstore_core.testing.onewriter import OneWriterCases, WholePartRivalCases

#: One writer per write is built on conditional creates, so it needs preconditions too.
_NEEDS_PRECONDITIONS = (ConditionalCases, OneWriterCases)
_WITHOUT_PRECONDITIONS = tuple(part for part in SUITE_PARTS if part not in _NEEDS_PRECONDITIONS)


class TestConformanceGCSEmulator(*_WITHOUT_PRECONDITIONS):  # type: ignore[misc]
    @pytest.fixture
    def conformance_backend(self, backend_gcs_emulator: Backend) -> Backend:
        return backend_gcs_emulator


class TestConformanceGCSFake(ConformanceSuite, WholePartRivalCases):
    @pytest.fixture
    def conformance_backend(self, backend_gcs_fake: Backend) -> Backend:
        return backend_gcs_fake
