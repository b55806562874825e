"""Committing an upload whose blob is stored already: a damaged stored copy is replaced."""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from layerstore_core import StorageDriver
from layerstore_core.registry import Registry
from layerstore_core.registry import paths as p
from layerstore_core.registry.manifests import OCI_MANIFEST
from layerstore_core.testing import Backend
from tests.stores import CountingDriver, push_blob

DATA = random.Random(7).randbytes(300_000)
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()
BLOB = p.path_for(p.BlobDataPath(DIGEST))


@pytest.fixture(params=["filesystem", "inmemory"])
def driver(request: pytest.FixtureRequest) -> StorageDriver:
    backend: Backend = request.getfixturevalue(f"backend_{request.param}")
    return backend.make()


def _damage(driver: StorageDriver, data: bytes) -> None:
    driver.put_content(BLOB, data)


@pytest.mark.parametrize("damage", [
    pytest.param(DATA[:-1], id="truncated"),
    pytest.param(DATA + b"x", id="longer"),
    pytest.param(bytes([DATA[0] ^ 1]) + DATA[1:], id="first-byte"),
    pytest.param(DATA[:-1] + bytes([DATA[-1] ^ 1]), id="last-byte"),
    pytest.param(b"", id="empty"),
])
def test_damaged_stored_blob_is_replaced_by_the_verified_upload(
    driver: StorageDriver, damage: bytes
) -> None:
    registry = Registry(driver)
    push_blob(registry, "a", DATA)
    _damage(driver, damage)
    push_blob(registry, "b", DATA)
    assert driver.get_content(BLOB) == DATA
    with registry.repository("a").blobs.open(DIGEST) as f:
        assert f.read() == DATA


def test_intact_stored_blob_is_kept(driver: StorageDriver) -> None:
    registry = Registry(driver)
    push_blob(registry, "a", DATA)
    counting = CountingDriver(driver)
    push_blob(Registry(counting), "b", DATA)
    assert BLOB not in counting.writes
    assert driver.get_content(BLOB) == DATA


def test_damaged_stored_manifest_is_rewritten(driver: StorageDriver) -> None:
    registry = Registry(driver)
    config = push_blob(registry, "a", b"{}")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "x", "digest": config, "size": 2},
                           "layers": []}).encode()
    digest = registry.repository("a").manifests.put(manifest, OCI_MANIFEST, tag="t")
    path = p.path_for(p.BlobDataPath(digest))
    driver.put_content(path, manifest.replace(b"schemaVersion", b"schemaVersioN"))
    registry.repository("a").manifests.put(manifest, OCI_MANIFEST, tag="t")
    assert registry.repository("a").manifests.get("t").content == manifest
