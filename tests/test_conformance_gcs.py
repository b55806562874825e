"""The conformance suite on the ``gcs`` driver, once per GCS emulator.

gcp-storage-emulator implements no preconditions (``ifGenerationMatch`` is ignored, so every
conditional create "succeeds"): the conditional-create and one-writer parts run on fake-gcs-server,
which implements them as GCS does (with ``WholePartRivalCases``: writes there are segmented, one
object per writer session composed at commit); every other part runs on both.

The large-stream case runs at the driver's default chunk size (as deployed), every other case
at the test backends' 1 MiB: fake-gcs-server's work per chunk of a resumable upload grows with
the upload (256 MiB in 1 MiB chunks took 63 s, in 16 MiB chunks 11 s), and gcp-storage-emulator's
is a fixed ~80 ms. The stream stays 256 MiB in 16 parts.
"""

import dataclasses

import pytest

from layerstore_core.testing import SUITE_PARTS, Backend, ConformanceSuite
from layerstore_core.testing.conditional import ConditionalCases
from layerstore_core.testing.onewriter import OneWriterCases, WholePartRivalCases

#: One writer per write is built on conditional creates, so it needs preconditions too.
_NEEDS_PRECONDITIONS = (ConditionalCases, OneWriterCases)
_WITHOUT_PRECONDITIONS = tuple(part for part in SUITE_PARTS if part not in _NEEDS_PRECONDITIONS)


def _for_test(backend: Backend, request: pytest.FixtureRequest) -> Backend:
    """``backend``, at the driver's default chunk size for the large-stream case (``slow``)."""
    if request.node.get_closest_marker("slow") is None:
        return backend
    params = {k: v for k, v in backend.params.items() if k != "chunksize"}
    return dataclasses.replace(backend, params=params)


class TestConformanceGCSEmulator(*_WITHOUT_PRECONDITIONS):  # type: ignore[misc]
    @pytest.fixture
    def conformance_backend(
        self, backend_gcs_emulator: Backend, request: pytest.FixtureRequest
    ) -> Backend:
        return _for_test(backend_gcs_emulator, request)


class TestConformanceGCSFake(ConformanceSuite, WholePartRivalCases):
    @pytest.fixture
    def conformance_backend(
        self, backend_gcs_fake: Backend, request: pytest.FixtureRequest
    ) -> Backend:
        return _for_test(backend_gcs_fake, request)
