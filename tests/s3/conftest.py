"""Helpers for the S3-specific tests: drivers with parameter overrides, a child-process writer."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from layerstore_s3 import S3Driver

from layerstore_core import load_driver
from layerstore_core.driver import StorageDriver
from tests.backends.s3 import BUCKET, _purge, s3_params

MIB = 2**20

#: A writer session in a child process: resume or start, write a slice of seeded data, then
#: close, commit, or abandon (exit without close, as a crash would).
_CHILD = """
import json, random, sys
from layerstore_core import load_driver
spec = json.loads(sys.argv[1])
data = random.Random(spec["seed"]).randbytes(spec["total"])
driver = load_driver("s3", **spec["params"])
writer = driver.writer(spec["path"], append=spec["append"])
start = writer.size
writer.write(data[start:start + spec["count"]])
getattr(writer, spec["finish"])() if spec["finish"] != "abandon" else None
print(json.dumps({"start": start, "size": writer.size}))
"""


MakeDriver = Callable[..., StorageDriver]


@pytest.fixture
def make_driver(moto_endpoint: str) -> Iterator[MakeDriver]:
    """Build S3 drivers on one fresh prefix, with parameter overrides; purge afterwards."""
    root = s3_params(moto_endpoint)["rootdirectory"]
    made: list[StorageDriver] = []

    def make(**overrides: Any) -> StorageDriver:
        params = s3_params(moto_endpoint, rootdirectory=root, **overrides)
        driver = load_driver("s3", **params)
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.close()
    _purge(_raw_client(moto_endpoint), root.strip("/") + "/")


def _raw_client(url: str) -> Any:
    from tests.backends.s3 import _client

    return _client(url)


def child_write(driver: StorageDriver, path: str, *, seed: int, total: int, count: int,
                append: bool, finish: str) -> dict[str, int]:
    """Run one writer session in a separate Python process; returns its start offset and size."""
    assert isinstance(driver, S3Driver)
    params = dataclasses.asdict(driver.params)
    spec = {"params": params, "path": path, "seed": seed, "total": total,
            "count": count, "append": append, "finish": finish}
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(spec)],
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    result: dict[str, int] = json.loads(done.stdout.decode().splitlines()[-1])
    return result


def key_of(driver: StorageDriver, path: str) -> str:
    """The raw S3 key of a contract path."""
    assert isinstance(driver, S3Driver)
    return driver.key(path)


def uploads_at(s3_client: Any, key: str) -> list[dict[str, Any]]:
    uploads = s3_client.list_multipart_uploads(Bucket=BUCKET, Prefix=key).get("Uploads", [])
    return [u for u in uploads if u["Key"] == key]


def part_sizes(s3_client: Any, key: str) -> list[int]:
    """Sizes of the parts of the unfinished upload at ``key`` (none before a part is sent)."""
    uploads = uploads_at(s3_client, key)
    if not uploads:
        return []
    (upload,) = uploads
    parts = s3_client.list_parts(Bucket=BUCKET, Key=key, UploadId=upload["UploadId"])
    return [p["Size"] for p in sorted(parts.get("Parts", []), key=lambda p: p["PartNumber"])]
