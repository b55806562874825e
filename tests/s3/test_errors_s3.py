"""Every S3 error the driver can meet is in the one translation table, and maps as it should."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from botocore.exceptions import ClientError
from layerstore_s3.errors import ERROR_TABLE, error_code

from layerstore_core import load_driver
from layerstore_core.errors import InvalidOffsetError, PathNotFoundError, StorageDriverError
from tests.backends.s3 import BUCKET, s3_params

from .conftest import MakeDriver, key_of


def _code(exc: BaseException) -> str:
    cause = exc.__cause__
    assert isinstance(cause, ClientError), f"not raised through the table: {exc!r}"
    code = error_code(cause)
    assert code in ERROR_TABLE, f"S3 code {code} is missing from ERROR_TABLE"
    return code


def test_codes_the_driver_meets_are_in_the_table(make_driver: MakeDriver, s3_client: Any,
                                                moto_endpoint: str) -> None:
    driver = make_driver()
    with pytest.raises(PathNotFoundError) as missing:
        driver.get_content("/missing")
    assert _code(missing.value) == "NoSuchKey"
    driver.put_content("/short", b"abc")
    with pytest.raises(InvalidOffsetError) as past_end:
        driver.reader("/short", 10)
    assert past_end.value.offset == 10
    assert driver.reader("/short", 3).read() == b""
    wrong_bucket = load_driver("s3", **s3_params(moto_endpoint, bucket="no-such-bucket"))
    with pytest.raises(StorageDriverError) as no_bucket:
        wrong_bucket.put_content("/x", b"1")
    assert _code(no_bucket.value) == "NoSuchBucket"
    assert no_bucket.value.driver == "s3" and no_bucket.value.path == "/x"
    with pytest.raises(ClientError) as raw_range:
        s3_client.get_object(Bucket=BUCKET, Key=key_of(driver, "/short"), Range="bytes=9-")
    assert ERROR_TABLE[error_code(raw_range.value)] is InvalidOffsetError
    with pytest.raises(ClientError) as raw_head:
        s3_client.head_object(Bucket=BUCKET, Key=key_of(driver, "/missing"))
    assert ERROR_TABLE[error_code(raw_head.value)] is PathNotFoundError


def test_table_maps_to_our_tree() -> None:
    assert all(issubclass(cls, StorageDriverError) for cls in ERROR_TABLE.values())
    for code in ("NoSuchKey", "404", "NoSuchUpload"):
        assert ERROR_TABLE[code] is PathNotFoundError


_CHILD = """
import json, sys
from layerstore_core import load_driver
driver = load_driver("s3", **json.loads(sys.argv[1]))
driver.put_content("/ca", b"ok")
print(driver.get_content("/ca").decode())
driver.delete("/ca")
"""


@pytest.mark.parametrize("bundle", ["/etc/ssl/certs/ca-certificates.crt", "/nonexistent/ca.pem"])
def test_works_over_http_whatever_aws_ca_bundle_says(moto_endpoint: str, bundle: str) -> None:
    """Distribution's s3 driver panics with AWS_CA_BUNDLE set; ours must not care over http."""
    env = {"AWS_CA_BUNDLE": bundle, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(s3_params(moto_endpoint))],
                          capture_output=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout.split()[-1] == b"ok"
