"""The S3 driver's writes (the core's PartWriter over S3Bucket) across processes.

Tails below and above 5 MiB survive close() in the state object, parts stay uniform, crash
windows lose and duplicate nothing, and a resume costs one GET (no ListMultipartUploads).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from layerstore_s3 import S3Driver

from layerstore_core.errors import PathNotFoundError, StorageDriverError
from tests.backends.s3 import BUCKET

from .conftest import MIB, MakeDriver, child_write, key_of, part_sizes, uploads_at

PART = 10 * MIB  # the default chunksize


def _data(seed: int, total: int) -> bytes:
    return random.Random(seed).randbytes(total)


@pytest.mark.parametrize(
    "sessions",
    [
        pytest.param([1 * MIB, 2 * MIB, 3], id="tails-below-5MiB"),
        pytest.param([7 * MIB, 6 * MIB + 5, 8 * MIB], id="tails-above-5MiB"),
        pytest.param([PART, 2 * PART + 1, MIB - 1], id="whole-parts-then-tails"),
    ],
)
def test_resume_in_other_processes(make_driver: MakeDriver, s3_client: Any,
                                   sessions: list[int]) -> None:
    driver = make_driver()
    path, total, seed = "/up/data", sum(sessions) + 4321, len(sessions)
    offset = 0
    for n, count in enumerate(sessions):
        got = child_write(driver, path, seed=seed, total=total, count=count,
                          append=n > 0, finish="close")
        assert got == {"start": offset, "size": offset + count}
        offset += count
        # every stored part is a whole part; the rest lives in the hidden state object
        assert part_sizes(s3_client, key_of(driver, path)) == [PART] * (offset // PART)
    assert list(driver.walk("/")) == []  # nothing visible before commit, the tail included
    with pytest.raises(PathNotFoundError):
        driver.stat(path)
    writer = driver.writer(path, append=True)
    assert writer.size == offset
    writer.write(_data(seed, total)[offset:])
    writer.commit()
    assert driver.get_content(path) == _data(seed, total)
    head = s3_client.head_object(Bucket=BUCKET, Key=key_of(driver, path))
    if total > PART:  # parts: every one full but the last
        assert head["ETag"].endswith(f'-{-(-total // PART)}"')
    else:  # under one part: one PutObject at commit, no multipart upload at all
        assert "-" not in head["ETag"]
    assert uploads_at(s3_client, key_of(driver, path)) == []


def test_crash_after_part_before_new_state(make_driver: MakeDriver) -> None:
    """A part sent after the last close() is ignored on resume, then replaced: nothing doubled."""
    driver = make_driver()
    path, total, seed = "/crash", 35 * MIB, 7
    child_write(driver, path, seed=seed, total=total, count=12 * MIB, append=False,
                finish="close")  # part 1 and a 2 MiB tail in the state object
    # resumes the tail, fills and sends part 2 (2 + 8 MiB), then dies before close
    got = child_write(driver, path, seed=seed, total=total, count=9 * MIB, append=True,
                      finish="abandon")
    assert got == {"start": 12 * MIB, "size": 21 * MIB}
    writer = driver.writer(path, append=True)
    assert writer.size == 12 * MIB  # what the last close() saved; part 2 is sent again
    writer.write(_data(seed, total)[12 * MIB :])
    writer.commit()
    assert driver.get_content(path) == _data(seed, total)


def test_crash_before_the_first_part(make_driver: MakeDriver) -> None:
    """A tail-only state resumes at its size even when a later session died mid-part."""
    driver = make_driver()
    path, total, seed = "/crash-tail", 25 * MIB, 8
    child_write(driver, path, seed=seed, total=total, count=3 * MIB, append=False,
                finish="close")
    child_write(driver, path, seed=seed, total=total, count=8 * MIB, append=True,
                finish="abandon")
    writer = driver.writer(path, append=True)
    assert writer.size == 3 * MIB
    writer.write(_data(seed, total)[3 * MIB :])
    writer.commit()
    assert driver.get_content(path) == _data(seed, total)


def test_stray_part_beyond_a_gap_is_ignored(make_driver: MakeDriver, s3_client: Any) -> None:
    driver = make_driver()
    path, data = "/gap", _data(3, 23 * MIB)
    writer = driver.writer(path)
    writer.write(data[: 12 * MIB])
    writer.close()
    key = key_of(driver, path)
    (upload,) = uploads_at(s3_client, key)
    s3_client.upload_part(Bucket=BUCKET, Key=key, UploadId=upload["UploadId"], PartNumber=3,
                          Body=b"x" * (5 * MIB))  # a later part whose predecessor failed
    writer = driver.writer(path, append=True)
    assert writer.size == 12 * MIB
    writer.write(data[12 * MIB :])
    writer.commit()
    assert driver.get_content(path) == data


def test_parallel_parts_keep_order_and_size(make_driver: MakeDriver, s3_client: Any) -> None:
    driver = make_driver(maxconcurrency=4, chunksize=5 * MIB)
    path, data = "/par", _data(11, 37 * MIB + 3)
    writer = driver.writer(path)
    for start in range(0, len(data), 3 * MIB):
        writer.write(data[start : start + 3 * MIB])
    writer.close()
    assert part_sizes(s3_client, key_of(driver, path)) == [5 * MIB] * 7
    writer = driver.writer(path, append=True)
    assert writer.size == len(data)
    writer.commit()
    assert driver.get_content(path) == data


def test_append_to_committed_content(make_driver: MakeDriver, s3_client: Any) -> None:
    driver = make_driver(chunksize=5 * MIB)
    path, data = "/committed", _data(5, 17 * MIB)
    driver.put_content(path, data[: 12 * MIB + 9])  # two whole parts and a remainder
    writer = driver.writer(path, append=True)
    assert writer.size == 12 * MIB + 9
    writer.close()  # the copied parts and the remainder survive close
    assert driver.get_content(path) == data[: 12 * MIB + 9]  # unchanged until commit
    got = child_write(driver, path, seed=5, total=17 * MIB, count=5 * MIB - 9, append=True,
                      finish="close")
    assert got["start"] == 12 * MIB + 9
    writer = driver.writer(path, append=True)
    writer.commit()
    assert driver.get_content(path) == data
    assert uploads_at(s3_client, key_of(driver, path)) == []


def test_zero_bytes_then_append(make_driver: MakeDriver) -> None:
    driver = make_driver()
    writer = driver.writer("/z")
    writer.commit()
    assert driver.get_content("/z") == b""
    writer = driver.writer("/z", append=True)
    assert writer.size == 0
    writer.write(b"abc")
    writer.commit()
    assert driver.get_content("/z") == b"abc"


def test_cancel_leaves_no_upload_or_tail(make_driver: MakeDriver, s3_client: Any) -> None:
    driver = make_driver()
    path = "/cancelled"
    writer = driver.writer(path)
    writer.write(_data(1, 12 * MIB))
    writer.close()
    key = key_of(driver, path)
    assert len(uploads_at(s3_client, key)) == 1
    driver.writer(path, append=True).cancel()
    assert uploads_at(s3_client, key) == []
    root = key[: -len(path)]
    keys = s3_client.list_objects_v2(Bucket=BUCKET, Prefix=root).get("Contents", [])
    assert keys == []  # no tail object either


def test_fresh_writer_discards_unfinished_write(make_driver: MakeDriver, s3_client: Any) -> None:
    driver = make_driver()
    writer = driver.writer("/again")
    writer.write(b"old" * (4 * MIB))  # an upload with a part and a tail
    writer.close()
    assert len(uploads_at(s3_client, key_of(driver, "/again"))) == 1
    writer = driver.writer("/again")
    assert uploads_at(s3_client, key_of(driver, "/again")) == []
    writer.write(b"new")
    writer.commit()
    assert driver.get_content("/again") == b"new"


def test_foreign_upload_is_never_continued(make_driver: MakeDriver, s3_client: Any) -> None:
    """Only the state object names an upload: one made by another tool (uneven parts) is not
    taken for ours, whatever its parts."""
    driver = make_driver()
    key = key_of(driver, "/foreign")
    upload = s3_client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    s3_client.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=1,
                          Body=b"a" * (6 * MIB))
    s3_client.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=2,
                          Body=b"b" * (5 * MIB))
    with pytest.raises(PathNotFoundError):
        driver.writer("/foreign", append=True)
    writer = driver.writer("/foreign")
    writer.write(b"ours")
    writer.commit()
    assert driver.get_content("/foreign") == b"ours"
    s3_client.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload)


def test_failed_commit_can_be_retried(make_driver: MakeDriver) -> None:
    driver = make_driver(maxconcurrency=2, chunksize=5 * MIB)
    data = _data(9, 13 * MIB)
    failures: list[int] = []

    def fail_once(**_: Any) -> None:
        if not failures:
            failures.append(1)
            raise ConnectionError("injected: complete lost")

    assert isinstance(driver, S3Driver)
    driver.bucket.client.meta.events.register(
        "before-call.s3.CompleteMultipartUpload", fail_once)
    writer = driver.writer("/retry")
    writer.write(data)
    with pytest.raises(StorageDriverError, match="injected"):
        writer.commit()
    writer.write(b"more")  # the final part went up: it is sent again, longer
    writer.commit()
    assert driver.get_content("/retry") == data + b"more"


def test_tail_hidden_at_bucket_root(moto_endpoint: str, s3_client: Any) -> None:
    """With no rootdirectory the side objects sit at the bucket's top level, still unseen."""
    from layerstore_core import load_driver
    from tests.backends.s3 import s3_params

    bucket = "layerstore-noroot"
    s3_client.create_bucket(Bucket=bucket)
    driver = load_driver("s3", **s3_params(moto_endpoint, bucket=bucket, rootdirectory=""))
    writer = driver.writer("/x")
    writer.write(b"tail bytes")
    writer.close()
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["x~state"]  # a fresh write claims offset 0 by creating its state
    writer = driver.writer("/x", append=True)
    writer.write(b" and more")
    writer.close()
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["x~from~10", "x~state"]  # the one-writer fence of the advance from 10
    assert driver.list("/") == []
    assert list(driver.walk("/")) == []
    assert driver.stat("/").is_dir
    writer = driver.writer("/x", append=True)
    writer.commit()
    assert [info.path for info in driver.walk("/")] == ["/x"]
    driver.delete("/x")
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    s3_client.delete_bucket(Bucket=bucket)


def test_commit_to_leaves_no_fence(make_driver: MakeDriver, s3_client: Any) -> None:
    """A write under one part committed straight at its destination takes its fences along.

    Its state object stays (``commit_keeps_write``: a retried commit resumes it) until the
    path is deleted.
    """
    driver = make_driver()
    writer = driver.writer("/up/data")
    writer.write(b"first")
    writer.close()
    writer = driver.writer("/up/data", append=True)
    writer.write(b", second")
    writer.close()  # fenced from offset 5
    writer = driver.resume_writer("/up/data")
    driver.commit_to(writer, "/blob")
    prefix = key_of(driver, "/")

    def keys() -> list[str]:
        return [o["Key"] for o in s3_client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
                .get("Contents", [])]

    assert driver.commit_keeps_write
    assert keys() == [key_of(driver, "/blob"), key_of(driver, "/up/data") + "~state"]
    assert driver.get_content("/blob") == b"first, second"
    driver.delete_many(["/up/data"])
    assert keys() == [key_of(driver, "/blob")]


def test_lowered_chunksize_keeps_the_uploads_part_size(make_driver: MakeDriver,
                                                       s3_client: Any) -> None:
    """Parts stay uniform when chunksize changes mid-write: the state holds the part size."""
    driver = make_driver(chunksize=8 * MIB)
    data = _data(6, 27 * MIB)
    writer = driver.writer("/lowered")
    writer.write(data[: 14 * MIB])  # one part and a 6 MiB tail (above the new chunksize)
    writer.close()
    lowered = make_driver(chunksize=5 * MIB)
    writer = lowered.writer("/lowered", append=True)
    assert writer.size == 14 * MIB
    writer.write(data[14 * MIB :])
    writer.close()
    assert part_sizes(s3_client, key_of(driver, "/lowered")) == [8 * MIB] * 3
    writer = lowered.writer("/lowered", append=True)
    writer.commit()
    assert lowered.get_content("/lowered") == data


@pytest.mark.parametrize("maxconcurrency", [1, 3])
def test_exact_parts_send_no_empty_final_part(make_driver: MakeDriver, s3_client: Any,
                                              maxconcurrency: int) -> None:
    driver = make_driver(chunksize=5 * MIB, maxconcurrency=maxconcurrency)
    data = _data(4, 10 * MIB)
    writer = driver.writer("/exact")
    writer.write(data)
    writer.commit()
    head = s3_client.head_object(Bucket=BUCKET, Key=key_of(driver, "/exact"))
    assert head["ETag"].endswith('-2"')
    assert driver.get_content("/exact") == data


def test_parts_carry_crc32_across_resume(make_driver: MakeDriver, s3_client: Any) -> None:
    """Our uploads use per-part CRC32 (as TransferManager does), kept when resumed elsewhere."""
    driver = make_driver(chunksize=5 * MIB)
    path, total = "/crc", 12 * MIB
    child_write(driver, path, seed=2, total=total, count=6 * MIB, append=False, finish="close")
    key = key_of(driver, path)
    (upload,) = uploads_at(s3_client, key)
    assert upload.get("ChecksumAlgorithm") == "CRC32"
    writer = driver.writer(path, append=True)
    writer.write(_data(2, total)[6 * MIB :])
    writer.commit()
    head = s3_client.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert head.get("ChecksumCRC32")
    assert driver.get_content(path) == _data(2, total)
