"""S3-specific behaviour of the driver: paging, multipart copy, SSE, presigned URLs, parameters."""

from __future__ import annotations

import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from layerstore_s3 import S3Driver
from layerstore_s3.config import S3Params

from layerstore_core import load_driver
from layerstore_core.errors import PathNotFoundError
from layerstore_core.params import ParameterError
from tests.backends.s3 import BUCKET

from .conftest import MIB, MakeDriver, key_of


def test_more_than_1000_keys(make_driver: MakeDriver) -> None:
    driver = make_driver()
    names = [f"f{n:04d}" for n in range(1003)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: driver.put_content(f"/many/{name}", b"x"), names))
    driver.put_content("/many-sibling", b"keep")
    assert driver.list("/many") == [f"/many/{name}" for name in names]
    walked = [info.path for info in driver.walk("/many")]
    assert walked == [f"/many/{name}" for name in names]
    driver.delete("/many")  # more than one DeleteObjects batch
    assert driver.list("/") == ["/many-sibling"]  # /many never touched /many-sibling
    with pytest.raises(PathNotFoundError):
        driver.list("/many")


def test_multipart_copy_above_threshold(make_driver: MakeDriver, s3_client: Any) -> None:
    driver = make_driver(multipartcopythresholdsize=5 * MIB, multipartcopychunksize=5 * MIB,
                         multipartcopymaxconcurrency=3)
    data = bytes(range(256)) * (12 * MIB // 256) + b"end"
    driver.put_content("/src", data)
    driver.move("/src", "/dst/blob")
    assert driver.get_content("/dst/blob") == data
    head = s3_client.head_object(Bucket=BUCKET, Key=key_of(driver, "/dst/blob"))
    assert head["ETag"].endswith('-3"')  # three UploadPartCopy parts
    with pytest.raises(PathNotFoundError):
        driver.stat("/src")


def test_small_move_is_one_copy(make_driver: MakeDriver, s3_client: Any) -> None:
    driver = make_driver()
    driver.put_content("/a", b"small")
    driver.move("/a", "/b")
    head = s3_client.head_object(Bucket=BUCKET, Key=key_of(driver, "/b"))
    assert "-" not in head["ETag"]
    assert driver.get_content("/b") == b"small"


@pytest.mark.parametrize("threshold", [5 * MIB, 64 * MIB], ids=["multipart", "one-copy"])
def test_copy_if_absent_is_one_conditional_copy(make_driver: MakeDriver, s3_client: Any,
                                                threshold: int) -> None:
    """A multipart copy looks at nothing first: S3 refuses its completion when the
    destination exists, which keeps its content, and no multipart upload is left behind. A
    single CopyObject looks first (moto ignores the condition on CopyObject)."""
    driver = make_driver(multipartcopythresholdsize=threshold, multipartcopychunksize=5 * MIB)
    data = bytes(range(256)) * (12 * MIB // 256)
    driver.put_content("/src", data)
    assert isinstance(driver, S3Driver)
    bucket = driver.bucket
    source = bucket.head(key_of(driver, "/src"))
    assert source is not None
    headers = _Headers(driver)
    assert bucket.copy_if_absent(source, key_of(driver, "/dst")) is True
    assert driver.get_content("/dst") == data
    driver.put_content("/taken", b"already here")
    assert bucket.copy_if_absent(source, key_of(driver, "/taken")) is False
    assert driver.get_content("/taken") == b"already here"
    assert len(headers.seen.get("HeadObject", [])) == (0 if threshold < len(data) else 2)
    left = s3_client.list_multipart_uploads(Bucket=BUCKET, Prefix=key_of(driver, "/"))
    assert not left.get("Uploads"), left


class _Headers:
    """Records the headers of every request a client sends, by operation name."""

    def __init__(self, driver: Any) -> None:
        self.seen: dict[str, list[dict[str, str]]] = {}
        driver.bucket.client.meta.events.register("before-sign.s3", self)

    def __call__(self, request: Any, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        self.seen.setdefault(operation, []).append(dict(request.headers))


def test_sse_and_storage_class_reach_every_create(make_driver: MakeDriver,
                                                  s3_client: Any) -> None:
    driver = make_driver(encrypt=True, keyid="alias/registry", storageclass="STANDARD_IA",
                         multipartcopythresholdsize=5 * MIB)
    headers = _Headers(driver)
    driver.put_content("/small", b"x")
    writer = driver.writer("/big")
    writer.write(b"y" * (11 * MIB))
    writer.close()
    writer = driver.writer("/big", append=True)
    writer.commit()
    driver.move("/big", "/moved")
    for operation in ("PutObject", "CreateMultipartUpload", "CopyObject"):
        for sent in headers.seen.get(operation, []):
            assert sent["x-amz-server-side-encryption"] == "aws:kms", operation
            assert sent["x-amz-server-side-encryption-aws-kms-key-id"] == "alias/registry"
    assert len(headers.seen["CreateMultipartUpload"]) == 2  # the write and the big move
    creates = headers.seen["PutObject"] + headers.seen["CreateMultipartUpload"]
    assert any(h.get("x-amz-storage-class") == "STANDARD_IA" for h in creates)
    head = s3_client.head_object(Bucket=BUCKET, Key=key_of(driver, "/moved"))
    assert head["ServerSideEncryption"] == "aws:kms"


def test_sse_s3(make_driver: MakeDriver, s3_client: Any) -> None:
    driver = make_driver(encrypt=True)
    driver.put_content("/enc", b"secret")
    head = s3_client.head_object(Bucket=BUCKET, Key=key_of(driver, "/enc"))
    assert head["ServerSideEncryption"] == "AES256"


def test_presigned_url_with_range(make_driver: MakeDriver) -> None:
    driver = make_driver(redirectexpiry=60)
    data = bytes(range(256)) * 40
    driver.put_content("/blob", data)
    url = driver.redirect_url("/blob")
    assert url is not None and "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    with urllib.request.urlopen(url) as resp:
        assert resp.read() == data
    ranged = urllib.request.Request(url, headers={"Range": "bytes=100-199"})
    with urllib.request.urlopen(ranged) as resp:
        assert resp.status == 206
        assert resp.read() == data[100:200]
    head_url = driver.redirect_url("/blob", "HEAD")
    assert head_url is not None
    with urllib.request.urlopen(urllib.request.Request(head_url, method="HEAD")) as resp:
        assert int(resp.headers["Content-Length"]) == len(data)


def test_load_driver_and_parameters(moto_endpoint: str) -> None:
    host = moto_endpoint.removeprefix("http://")
    driver = load_driver("s3", bucket=BUCKET, regionendpoint=host, secure="false",
                         accesskey="test", secretkey="test", forcepathstyle="true",
                         rootdirectory="/params-test/", chunksize=str(5 * MIB))
    assert isinstance(driver, S3Driver)
    assert driver.params.chunksize == 5 * MIB
    assert driver.params.endpoint_url == moto_endpoint
    driver.put_content("/x", b"1")
    assert driver.get_content("/x") == b"1"
    driver.delete("/x")
    driver.close()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"chunksize": 5 * MIB - 1}, "chunksize"),
        ({"multipartcopychunksize": 1}, "multipartcopychunksize"),
        ({"maxconcurrency": 0}, "maxconcurrency"),
        ({"storageclass": "FAST"}, "storageclass"),
        ({"keyid": "k"}, "keyid"),
        ({"accesskey": "a"}, "accesskey"),
        ({"v4auth": False}, "v4auth"),
        ({"bucket": ""}, "bucket"),
        ({"maxretries": -1}, "maxretries"),
        ({"redirectexpiry": 8 * 24 * 3600}, "redirectexpiry"),
        ({"chunksizes": 1}, "unknown parameter"),
    ],
)
def test_bad_parameters_are_refused(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        S3Driver.from_params({"bucket": "b", **params})


def test_default_parameters() -> None:
    params = S3Params(bucket="b")
    params.validate()
    assert params.chunksize == 10 * MIB
    assert params.redirectexpiry == 20 * 60 and params.maxretries == 5
    retries = S3Driver(params).bucket.client.meta.config.retries
    assert retries["total_max_attempts"] == 6  # botocore: 1 attempt + maxretries
    assert params.key_prefix == ""
    assert S3Params(bucket="b", rootdirectory="/a/b/").key_prefix == "a/b/"


def test_move_onto_itself_keeps_content(make_driver: MakeDriver) -> None:
    driver = make_driver()
    driver.put_content("/same", b"data")
    driver.move("/same", "/same")  # copy-then-delete would delete the only copy
    assert driver.get_content("/same") == b"data"
    with pytest.raises(PathNotFoundError):
        driver.move("/nothing", "/nothing")
