"""Malformed input gets a 4xx with its OCI code, never a 500; a full disk says so (507)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.server import Config
from layerstore_core.server.config import PurgeConfig
from layerstore_core.server.threaded import ThreadedServer

SECRET = "malformed-test-secret"
NINES = "9" * 10_000


def config(**overrides: object) -> Config:
    values: dict[str, object] = {"driver": "inmemory", "driver_params": {}, "secret": SECRET,
                                 "purge": PurgeConfig(enabled=False), "redirect_disabled": True}
    values.update(overrides)
    return Config(**values)  # type: ignore[arg-type]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with ThreadedServer(config(), InMemoryDriver()) as srv:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            yield c


def latin1(text: str) -> bytes:
    """A header value as raw bytes (httpx encodes str headers as ASCII only)."""
    return text.encode("latin-1")


def assert_error(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["errors"][0]["code"] == code


@pytest.mark.parametrize("n", ["%C2%B2", "%D9%A3", "1" * 10_000, "-1", "1e3", "0x10", " 5"])
def test_bad_page_sizes(client: httpx.Client, n: str) -> None:
    for path in ("/v2/_catalog", "/v2/a/tags/list"):
        r = client.get(f"{path}?n={n}")
        assert_error(r, 400, "PAGINATION_NUMBER_INVALID")


def test_content_range_with_huge_numbers(client: httpx.Client) -> None:
    r = client.post("/v2/a/blobs/uploads/")
    assert r.status_code == 202
    location = r.headers["Location"]
    for value in (f"100-{NINES}", f"{NINES}-{NINES}", "0-²", "²-5"):
        r = client.patch(location, content=b"x", headers={"Content-Range": latin1(value)})
        assert_error(r, 416, "RANGE_INVALID")


def test_content_length_with_unicode_digits(client: httpx.Client) -> None:
    r = client.post("/v2/a/blobs/uploads/")
    with httpx.Client(base_url=str(client.base_url)) as raw:
        req = raw.build_request("PATCH", r.headers["Location"], content=b"x")
        req.headers["Content-Length"] = "1" + "0" * 30
        try:
            resp = raw.send(req)
        except httpx.HTTPError:  # the parser itself may refuse it: then no 500 either
            return
        assert 400 <= resp.status_code < 500, resp.text


def test_ranges_with_huge_numbers(client: httpx.Client) -> None:
    data = b"0123456789"
    digest = sha(data)
    r = client.post("/v2/a/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201
    r = client.get(f"/v2/a/blobs/{digest}", headers={"Range": f"bytes={NINES}-"})
    assert_error(r, 416, "RANGE_INVALID")
    r = client.get(f"/v2/a/blobs/{digest}", headers={"Range": f"bytes=3-{NINES}"})
    assert r.status_code == 206 and r.content == data[3:]
    # A suffix longer than the blob is the whole blob (RFC 9110 14.1.2), as Go serves it.
    r = client.get(f"/v2/a/blobs/{digest}", headers={"Range": "bytes=-" + "9" * 5000})
    assert r.status_code == 206 and r.content == data
    r = client.get(f"/v2/a/blobs/{digest}", headers={"Range": latin1("bytes=²-")})
    assert r.status_code == 200 and r.content == data  # not a byte range at all: ignored


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deeply_nested_manifest(client: httpx.Client, opener: bytes) -> None:
    closer = b"]" if opener == b"[" else b"}"
    body = opener * 100_000 + b"1" + closer * 100_000
    r = client.put("/v2/a/manifests/latest", content=body,
                   headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert_error(r, 400, "MANIFEST_INVALID")


def test_deeply_nested_state_token(client: httpx.Client) -> None:
    """Even a correctly signed token whose payload nests 3,000 deep is refused, not a 500."""
    r = client.post("/v2/a/blobs/uploads/")
    upload_id = r.headers["Docker-Upload-UUID"]
    payload = b"[" * 3000

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    mac = hmac.new(SECRET.encode(), payload, hashlib.sha256).digest()
    token = f"{b64(payload)}.{b64(mac)}"
    r = client.get(f"/v2/a/blobs/uploads/{upload_id}", params={"_state": token})
    assert_error(r, 400, "BLOB_UPLOAD_INVALID")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a real filesystem that fills up (mounting needs root, as in CI)."""
    if os.geteuid() != 0:
        pytest.fail("the disk-full test mounts a tmpfs and must run as root")
    root = tmp_path / "small"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(root)], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=True)


def test_disk_full_is_507_and_monolithic_upload_is_removed(small_disk: Path) -> None:
    cfg = config(driver="filesystem", driver_params={"rootdirectory": str(small_disk)})
    with ThreadedServer(cfg) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        big = os.urandom(4 * 2**20)
        r = c.post("/v2/a/blobs/uploads/", params={"digest": sha(big)}, content=big)
        assert r.status_code == 507, r.text
        error = r.json()["errors"][0]
        assert "storage full" in error["message"] and "filesystem" in error["message"]
        leftovers = [p for p in small_disk.rglob("*") if "_uploads" in p.parts and p.is_file()]
        assert leftovers == []
        small = b"still room for this"
        r = c.post("/v2/a/blobs/uploads/", params={"digest": sha(small)}, content=small)
        assert r.status_code == 201, r.text
