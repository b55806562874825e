"""Rival PATCHes of whole parts to two servers on one S3 (moto): one accepted, the blob exact.

Two ``layerstore serve`` processes share one bucket. An upload holds a whole part already (its
multipart upload is the one both rivals continue); two threads released by a barrier PATCH the
same ``Content-Range`` with different bytes of several whole parts, one to each server, so both
send parts under the one multipart upload before either closes. Each time exactly one is
accepted (202) and the other refused (416, or 400 BLOB_UPLOAD_INVALID); at the end the upload
commits (201) to a blob that hashes to its digest — the winners' bytes only: the sessions sent
under part numbers they claimed (``objectstore.partclaims``), so no loser replaced a winner's
part. Then a write whose part numbers a rival holds to the end: its PATCH of a whole part is
answered 400 BLOB_UPLOAD_INVALID (not 503), and the upload still commits what it held.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from pathlib import Path

import httpx

from layerstore_core.objectstore import ObjectStoreDriver, partclaims
from layerstore_core.registry import paths as p
from layerstore_core.testing import Backend
from tests.test_http_onewriter import TIMEOUT, _offset, _one_wins, _patch, _put, _serve, _started

MIB = 2**20
#: The servers' part size (S3's smallest), so that whole parts stay cheap.
PART = 5 * MIB
RACES = 3
NAME = "race/parts"


def test_rival_whole_part_patches_one_wins(backend_s3: Backend, tmp_path: Path) -> None:
    backend = dataclasses.replace(backend_s3, params={**backend_s3.params, "chunksize": PART})
    rng = random.Random("whole-parts")
    servers = [_serve(backend, tmp_path, name) for name in ("a", "b")]
    urls = [url for _, url in servers]
    try:
        expected = rng.randbytes(PART + 7)  # one whole part and a tail
        location = _started(urls[0], NAME, expected)
        for race in range(RACES):
            bodies = [rng.randbytes(2 * PART + 5 + race) for _ in urls]
            won, location = _one_wins(urls, location, len(expected), bodies)
            expected += won
            for url in urls:
                assert _offset(url, location) == len(expected), (race, url)
        r, digest = _put(urls[1], location, expected)
        assert r.status_code == 201, r.text
        got = httpx.get(f"{urls[0]}/v2/{NAME}/blobs/{digest}", follow_redirects=True,
                        timeout=TIMEOUT)
        assert got.status_code == 200, got.text
        assert hashlib.sha256(got.content).hexdigest() == digest.removeprefix("sha256:")
    finally:
        for proc, _ in servers:
            proc.stop()


def test_part_numbers_exhausted_is_400(backend_s3: Backend, tmp_path: Path) -> None:
    backend = dataclasses.replace(backend_s3, params={**backend_s3.params, "chunksize": PART})
    rng = random.Random("exhausted")
    proc, url = _serve(backend, tmp_path, "a")
    driver = backend.make()
    try:
        held = rng.randbytes(PART + 7)
        location = _started(url, NAME, held)
        upload_id = location.split("?")[0].rsplit("/", 1)[1]
        assert isinstance(driver, ObjectStoreDriver)
        key = driver.key(p.path_for(p.UploadDataPath(NAME, upload_id)))
        # A rival session holding every number after the upload's one part.
        assert partclaims.claim(driver.bucket, key, 2, partclaims.last_number(driver.bucket) - 1)
        r = _patch(url, location, len(held), rng.randbytes(PART + 1))
        assert r.status_code == 400, r.text
        assert r.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID", r.text
        assert _offset(url, location) == len(held)
        r, digest = _put(url, location, held)
        assert r.status_code == 201, r.text
        got = httpx.get(f"{url}/v2/{NAME}/blobs/{digest}", follow_redirects=True,
                        timeout=TIMEOUT)
        assert got.status_code == 200 and got.content == held
    finally:
        driver.close()
        proc.stop()
