"""The S3 backend: moto's S3 server in a subprocess, one bucket, a fresh key prefix per test.

moto runs as a real HTTP server in its own process (not ``mock_aws``), so presigned URLs are
real and driver objects built in child processes (cross-process resume) reach the same data.
moto's 5 MiB minimum part size stays on (``S3_UPLOAD_PART_MIN_SIZE`` is removed from its env),
and its conditional writes are made atomic as S3's are (:mod:`tests.moto_atomic`).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from layerstore_core.testing import Backend

from ._servers import free_port, serve

BACKENDS = ["s3"]
BUCKET = "layerstore-test"
#: The repository root: ``tests.moto_atomic`` is run from it.
REPO = Path(__file__).resolve().parents[2]


@contextmanager
def moto_server() -> Iterator[str]:
    """Run moto's server (atomic conditional writes, the 5 MiB part minimum on); yield its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "S3_UPLOAD_PART_MIN_SIZE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "tests.moto_atomic", "-H", "127.0.0.1", "-p", str(port)]
    with serve("moto", cmd, url + "/moto-api/", env=env):
        yield url


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """Start moto's S3 server with the test bucket; fail loudly (no skip) if it cannot start."""
    with moto_server() as url:
        _client(url).create_bucket(Bucket=BUCKET)
        yield url


def _client(url: str) -> Any:
    import boto3

    return boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )


def s3_params(endpoint: str, **overrides: Any) -> dict[str, Any]:
    """Driver parameters for a fresh prefix on the test bucket."""
    params: dict[str, Any] = {
        "bucket": BUCKET,
        "region": "us-east-1",
        "regionendpoint": endpoint,
        "rootdirectory": f"/t-{uuid.uuid4().hex[:12]}",
        "accesskey": "test",
        "secretkey": "test",
        "forcepathstyle": True,
        "secure": False,
    }
    params.update(overrides)
    return params


@pytest.fixture
def s3_client(moto_endpoint: str) -> Any:
    """A raw boto3 client on the moto server, for tests that inspect S3 state directly."""
    return _client(moto_endpoint)


@pytest.fixture
def backend_s3(moto_endpoint: str) -> Iterator[Backend]:
    params = s3_params(moto_endpoint)
    yield Backend("s3", "s3", params)
    _purge(_client(moto_endpoint), params["rootdirectory"].strip("/") + "/")


def raw_leftovers(client: Any, prefix: str) -> list[str]:
    """Every raw key and unfinished multipart upload under ``prefix`` (what the driver hides)."""
    found: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        found.extend(obj["Key"] for obj in page.get("Contents", []))
    uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])
    found.extend(f"upload:{u['Key']}:{u['UploadId']}" for u in uploads)
    return found


def _purge(client: Any, prefix: str) -> None:
    """Drop what a test left under its prefix, so moto's memory stays small."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})
    uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])
    for upload in uploads:
        client.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])
