"""``put_content_if_absent`` on S3: one PutObject with ``If-None-Match: *`` (moto honours it)."""

import dataclasses
from typing import Any

import pytest

from layerstore_core.testing import Backend
from layerstore_core.testing.conditional import ConditionalCases
from tests.backends.s3 import raw_leftovers


class TestConditionalS3(ConditionalCases):
    @pytest.fixture
    def conformance_backend(self, backend_s3: Backend, s3_client: Any) -> Backend:
        prefix = backend_s3.params["rootdirectory"].strip("/") + "/"
        return dataclasses.replace(
            backend_s3, leftovers=lambda: raw_leftovers(s3_client, prefix)
        )
