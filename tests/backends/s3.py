"""The S3 backend: moto's S3 server in a subprocess, one bucket, a fresh key prefix per test.

moto runs as a real HTTP server in its own process (not ``mock_aws``), so presigned URLs are
real and driver objects built in child processes (cross-process resume) reach the same data.
moto's 5 MiB minimum part size stays on (``S3_UPLOAD_PART_MIN_SIZE`` is removed from its env).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from layerstore_core.testing import Backend

BACKENDS = ["s3"]
BUCKET = "layerstore-test"
START_TIMEOUT_S = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}: {_output(proc)}")
        try:
            with urllib.request.urlopen(url + "/moto-api/", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"moto server silent at {url} after {START_TIMEOUT_S}s: {_output(proc)}")


def _output(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None or proc.stdout is None:
        return ""
    return proc.stdout.read().decode(errors="replace")[-2000:]


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start ``python -m moto.server``; fail loudly (no skip) if it cannot start."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "S3_UPLOAD_PART_MIN_SIZE"}
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            _wait_ready(proc, url)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{log_path.read_text(errors='replace')[-2000:]}") from None
        _client(url).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
