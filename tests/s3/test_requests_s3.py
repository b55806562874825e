"""How many S3 requests each driver operation costs, and handing the driver a client or session.

The hot path of a registry is head, get, a write closed and resumed, and commit: each must be
the fewest requests S3 allows (no HeadObject before a GetObject, no ListMultipartUploads or
ListParts at all: the state object is the one record of an unfinished write).
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from layerstore_s3 import S3Driver, S3Params

from tests.backends.s3 import BUCKET, s3_params

from .conftest import MIB, MakeDriver


class _Requests:
    """Counts the requests a driver's client sends (retries included), by operation name."""

    def __init__(self, driver: Any) -> None:
        self.sent: Counter[str] = Counter()
        driver.bucket.client.meta.events.register("before-send.s3", self._seen)
        self.auth: list[str] = []

    def _seen(self, request: Any, event_name: str, **_: Any) -> None:
        self.sent[event_name.rsplit(".", 1)[-1]] += 1
        self.auth.append(str(request.headers.get("Authorization", "")))

    def take(self) -> dict[str, int]:
        """The counts since the last call."""
        counts, self.sent = dict(self.sent), Counter()
        return counts


def test_hot_path_request_counts(make_driver: MakeDriver) -> None:
    driver = make_driver(chunksize=5 * MIB)
    requests = _Requests(driver)
    driver.put_content("/f", b"0123456789")
    assert requests.take() == {"PutObject": 1}
    assert driver.stat("/f").size == 10
    assert requests.take() == {"HeadObject": 1}
    assert driver.get_content("/f") == b"0123456789"
    assert requests.take() == {"GetObject": 1}
    assert driver.reader("/f", 4).read() == b"456789"
    assert requests.take() == {"GetObject": 1}
    assert driver.reader("/f", 10).read() == b""  # S3's 416, then one HEAD to tell the end
    assert requests.take() == {"GetObject": 1, "HeadObject": 1}

    data = bytes(range(256)) * (13 * MIB // 256)
    writer = driver.writer("/w")
    assert requests.take() == {"GetObject": 1}  # is there an unfinished write to discard?
    writer.write(data[: 7 * MIB])
    writer.close()
    # the state, and the one-writer fence of the advance from 0 (DESIGN §4)
    assert requests.take() == {"CreateMultipartUpload": 1, "UploadPart": 1, "PutObject": 2}
    driver.writer("/w", append=True).release()  # a status request: read the state, no write
    assert requests.take() == {"GetObject": 1}
    writer = driver.writer("/w", append=True)
    writer.write(data[7 * MIB :])
    writer.commit()
    # PutObject: the claim of part 2's number, as the upload is shared (objectstore.partclaims)
    assert requests.take() == {"GetObject": 1, "PutObject": 1, "UploadPart": 2,
                               "CompleteMultipartUpload": 1, "DeleteObjects": 1}
    assert driver.get_content("/w") == data


def test_small_write_is_one_put(make_driver: MakeDriver) -> None:
    driver = make_driver()
    requests = _Requests(driver)
    writer = driver.writer("/small")
    writer.write(b"abc")
    writer.commit()
    assert requests.take() == {"GetObject": 1, "PutObject": 1}


def test_injected_client_is_used_and_not_closed(moto_endpoint: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                          aws_access_key_id="injected", aws_secret_access_key="test")
    closed: list[str] = []
    monkeypatch.setattr(client, "close", lambda: closed.append("injected"))
    params = S3Driver.Params(**s3_params(moto_endpoint, accesskey=None, secretkey=None))
    driver = S3Driver(params, client=client)
    assert driver.bucket.client is client
    requests = _Requests(driver)
    driver.put_content("/by-client", b"x")
    assert driver.get_content("/by-client") == b"x"
    assert all("Credential=injected/" in auth for auth in requests.auth)
    driver.delete("/by-client")
    driver.close()
    assert closed == []  # the user's client: the user closes it


def test_session_supplies_credentials(moto_endpoint: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    session = boto3.session.Session(aws_access_key_id="from-session",
                                    aws_secret_access_key="test", region_name="us-east-1")
    params = S3Params(**s3_params(moto_endpoint, accesskey=None, secretkey=None))
    driver = S3Driver(params, session=session)
    requests = _Requests(driver)
    driver.put_content("/by-session", b"y")
    assert driver.list("/") == ["/by-session"]
    assert requests.auth and all("Credential=from-session/" in a for a in requests.auth)
    assert driver.bucket.client.meta.config.retries["total_max_attempts"] == 6  # our settings
    driver.delete("/by-session")
    closed: list[str] = []
    monkeypatch.setattr(driver.bucket.client, "close", lambda: closed.append("built"))
    driver.close()
    assert closed == ["built"]  # built from the session by the driver: the driver closes it
    assert BUCKET == params.bucket


def test_copy_between_roots_of_one_bucket_is_server_side(make_driver: MakeDriver,
                                                         moto_endpoint: str) -> None:
    """``layerstore copy`` between two roots of one bucket sends no byte through this process."""
    from layerstore_core import load_driver
    from layerstore_core.ops.transfer import copy_file

    source = make_driver()
    root = s3_params(moto_endpoint)["rootdirectory"]
    dest = load_driver("s3", **s3_params(moto_endpoint, rootdirectory=root))
    try:
        data = bytes(range(256)) * (3 * MIB // 256)
        source.put_content("/blobs/b", data)
        requests = _Requests(dest)
        copy_file(source, dest, "/blobs/b", size=len(data))
        assert requests.take() == {"CopyObject": 1}
        assert dest.get_content("/blobs/b") == data
        dest.delete("/blobs")
    finally:
        dest.close()


def test_delete_many_is_one_request_per_thousand_keys(make_driver: MakeDriver) -> None:
    """Garbage collection's deletes: each file and its state object, nothing listed first."""
    driver = make_driver()
    paths = [f"/dm/{n:03d}/data" for n in range(510)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda path: driver.put_content(path, b"x"), paths))
    driver.put_content("/dm/keep", b"k")
    requests = _Requests(driver)
    driver.delete_many(paths)
    assert requests.take() == {"DeleteObjects": 2}  # 1,020 keys
    assert driver.list("/dm") == ["/dm/keep"]


def test_list_of_a_large_subtree_is_few_requests(make_driver: MakeDriver) -> None:
    """``list`` shows children of visible keys only, without listing the subtree flat.

    ``pending`` holds only an unfinished write's side objects (state and fence): it is looked
    into once and not listed; ``sub``'s 2,500 keys cost no page beyond the first.
    """
    driver = make_driver()
    paths = [f"/big/sub/{n:05d}" for n in range(2500)] + ["/big/other/x", "/big/top"]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda path: driver.put_content(path, b"x"), paths))
    writer = driver.writer("/big/pending/w")
    writer.write(b"unfinished")
    writer.close()
    requests = _Requests(driver)
    assert driver.list("/big") == ["/big/other", "/big/sub", "/big/top"]
    # the first flat page, one delimited page, and one page below `pending`
    assert requests.take() == {"ListObjectsV2": 3}
    assert driver.list("/big/other") == ["/big/other/x"]
    assert requests.take() == {"ListObjectsV2": 1}
