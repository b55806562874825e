"""S3's claimed part numbers (``objectstore.partclaims``): requests, numbers, storage class.

The conformance part ``ClaimedPartCases`` checks that rivals never replace each other's parts;
here the S3 side of it: what a continuing session sends (one conditional PutObject per claimed
range, ranges of 1, 2, 4 parts), the part numbers it uses (the final part is 10,000), that
claims and fences get no storage class and are deleted in the commit's one DeleteObjects, and
that moto's conditional create, which the claims rely on, has one winner at a time.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from layerstore_s3 import S3Driver

from tests.backends.s3 import BUCKET

from .conftest import MIB, MakeDriver, key_of

#: Parts written by the continuing session of the request-count test.
PARTS = 7


class _Sent:
    """The operations and UploadPart numbers a driver's client sends, and the keys of PutObjects."""

    def __init__(self, driver: S3Driver) -> None:
        self.operations: Counter[str] = Counter()
        self.part_numbers: list[int] = []
        self.put_keys: list[str] = []
        events = driver.bucket.client.meta.events
        events.register("provide-client-params.s3", self._params)

    def _params(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.operations[model.name] += 1
        if model.name == "UploadPart":
            self.part_numbers.append(int(params["PartNumber"]))
        if model.name == "PutObject":
            self.put_keys.append(str(params["Key"]))

    def take(self) -> tuple[dict[str, int], list[int], list[str]]:
        taken = (dict(self.operations), sorted(self.part_numbers), list(self.put_keys))
        self.operations, self.part_numbers, self.put_keys = Counter(), [], []
        return taken


def _data(size: int) -> bytes:
    return bytes(range(251)) * (size // 251) + bytes(size % 251)


def test_continuation_claims_ranges_and_sends_the_final_part_last(
    make_driver: MakeDriver, s3_client: Any
) -> None:
    driver = make_driver(chunksize=5 * MIB)
    assert isinstance(driver, S3Driver)
    key = key_of(driver, "/w")
    data = _data((PARTS + 1) * 5 * MIB + 3 * MIB)
    writer = driver.writer("/w")
    writer.write(data[: 5 * MIB + 7])  # one part and a tail: the upload a rival may share
    writer.close()
    sent = _Sent(driver)
    writer = driver.writer("/w", append=True)
    writer.write(data[5 * MIB + 7 : (PARTS + 1) * 5 * MIB + 1])
    writer.close()
    operations, numbers, puts = sent.take()
    claims = [k for k in puts if "~parts~" in k]
    assert claims == [f"{key}~parts~2", f"{key}~parts~3", f"{key}~parts~5"]  # 1, 2, 4 parts
    assert numbers == list(range(2, 2 + PARTS))
    assert operations == {"GetObject": 1, "UploadPart": PARTS, "PutObject": 3 + 2}  # + fence, state
    writer = driver.writer("/w", append=True)
    writer.write(data[(PARTS + 1) * 5 * MIB + 1 :])
    writer.commit()
    operations, numbers, _ = sent.take()
    assert numbers == [10_000]  # the final part: a number no session claims
    assert operations == {"GetObject": 1, "UploadPart": 1, "CompleteMultipartUpload": 1,
                          "DeleteObjects": 1}  # state, fences and claims in one request
    assert driver.get_content("/w") == data
    listed = s3_client.list_objects_v2(Bucket=BUCKET, Prefix=key).get("Contents", [])
    assert [o["Key"] for o in listed] == [key]


def test_side_objects_get_no_storage_class(make_driver: MakeDriver, s3_client: Any) -> None:
    driver = make_driver(chunksize=5 * MIB, storageclass="STANDARD_IA")
    key = key_of(driver, "/ia")
    data = _data(23 * MIB)
    writer = driver.writer("/ia")
    writer.write(data[: 6 * MIB])
    writer.close()
    writer = driver.writer("/ia", append=True)
    writer.write(data[6 * MIB : 18 * MIB])
    writer.close()
    listed = s3_client.list_objects_v2(Bucket=BUCKET, Prefix=key)["Contents"]
    side = {o["Key"][len(key) :]: o["StorageClass"] for o in listed}
    assert {"~state", "~from~0", f"~from~{6 * MIB}", "~parts~2", "~parts~3"} <= set(side)
    assert set(side.values()) == {"STANDARD"}, side
    writer = driver.writer("/ia", append=True)
    writer.write(data[18 * MIB :])
    writer.commit()
    assert s3_client.head_object(Bucket=BUCKET, Key=key)["StorageClass"] == "STANDARD_IA"
    listed = s3_client.list_objects_v2(Bucket=BUCKET, Prefix=key)["Contents"]
    assert [o["Key"] for o in listed] == [key]
    assert driver.get_content("/ia") == data


def test_conditional_create_has_one_winner(make_driver: MakeDriver) -> None:
    """What claims and fences rely on: of PutObjects with ``If-None-Match: *`` at once, one wins.

    moto checks the condition and stores the object in two steps; the server the tests start
    (``tests/moto_atomic.py``) holds a lock across them, as S3 decides atomically.
    """
    driver = make_driver(maxconcurrency=8)
    assert isinstance(driver, S3Driver)
    rivals, rounds = 8, 12
    for round_ in range(rounds):
        key = key_of(driver, f"/claim-{round_}")
        barrier = threading.Barrier(rivals, timeout=60)

        def create(i: int, key: str = key, barrier: threading.Barrier = barrier) -> bool:
            barrier.wait()
            return driver.bucket.put_if_absent(key, b"%d" % i * 4096)

        with ThreadPoolExecutor(rivals) as pool:
            won = list(pool.map(create, range(rivals)))
        assert won.count(True) == 1, (round_, won)
