"""The conformance suite on the ``s3`` driver against moto's S3 server.

``leftovers`` looks below the driver: every raw key under the test's prefix (the writer's hidden
tail objects included) and every unfinished multipart upload, so litter the driver hides fails
the test.
"""

import dataclasses
from typing import Any

import pytest

from layerstore_core.testing import Backend, ConformanceSuite
from layerstore_core.testing.claimedparts import ClaimedPartCases
from layerstore_core.testing.onewriter import WholePartRivalCases
from tests.backends.s3 import raw_leftovers


class TestConformanceS3(ConformanceSuite, WholePartRivalCases, ClaimedPartCases):
    @pytest.fixture
    def conformance_backend(self, backend_s3: Backend, s3_client: Any) -> Backend:
        prefix = backend_s3.params["rootdirectory"].strip("/") + "/"
        return dataclasses.replace(
            backend_s3, leftovers=lambda: raw_leftovers(s3_client, prefix)
        )
