"""Per-repository blob access on every backend: stat, open/seek, mount, delete, isolation."""

from __future__ import annotations

import hashlib
import io

import pytest

from layerstore_core import (
    BlobUnknownError,
    DigestInvalidError,
    NameInvalidError,
    Registry,
    RegistryError,
)
from layerstore_core.registry import paths as p
from layerstore_core.testing import Backend


def push(registry: Registry, repo: str, data: bytes) -> str:
    upload = registry.repository(repo).blobs.create_upload()
    upload.write(data)
    return upload.commit("sha256:" + hashlib.sha256(data).hexdigest(), len(data)).digest


@pytest.fixture
def registry(any_backend: Backend) -> Registry:
    return Registry(any_backend.make())


def test_stat_and_seekable_open(registry: Registry) -> None:
    data = bytes(range(256)) * 1000
    digest = push(registry, "a/b", data)
    blobs = registry.repository("a/b").blobs
    desc = blobs.stat(digest)
    assert (desc.digest, desc.size) == (digest, len(data))
    with blobs.open(digest) as reader:
        assert reader.seekable() and reader.readable()
        assert reader.read(10) == data[:10]
        assert reader.seek(100_000) == 100_000
        assert reader.read(5) == data[100_000:100_005]
        assert reader.tell() == 100_005
        reader.seek(-3, io.SEEK_END)
        assert reader.read() == data[-3:]
        reader.seek(len(data) + 10)
        assert reader.read(1) == b""
        reader.seek(7)
        assert reader.read() == data[7:]


def test_redirect_url_is_driver_url_or_none(registry: Registry) -> None:
    digest = push(registry, "a/b", b"payload")
    url = registry.repository("a/b").blobs.redirect_url(digest)
    expected = registry.driver.redirect_url(p.path_for(p.BlobDataPath(digest)))
    assert url == expected
    with pytest.raises(BlobUnknownError):
        registry.repository("a/c").blobs.redirect_url(digest)


def test_no_leak_across_repositories(registry: Registry) -> None:
    digest = push(registry, "team/one", b"secret layer")
    other = registry.repository("team/two").blobs
    for call in (other.stat, other.open, other.delete):
        with pytest.raises(BlobUnknownError) as err:
            call(digest)
        assert (err.value.code, err.value.status) == ("BLOB_UNKNOWN", 404)
    assert not other.exists(digest)


def test_mount_allowed_and_refused(registry: Registry) -> None:
    digest = push(registry, "src/repo", b"mount me")
    dest = registry.repository("dst/repo").blobs
    assert dest.mount(digest, "src/repo").size == 8
    assert dest.stat(digest).size == 8
    link = registry.driver.get_content(p.path_for(p.LayerLinkPath("dst/repo", digest)))
    assert link == digest.encode() and len(link) == 71
    with pytest.raises(BlobUnknownError):
        registry.repository("third").blobs.mount(digest, "elsewhere")
    assert not registry.repository("third").blobs.exists(digest)
    with pytest.raises(NameInvalidError):
        dest.mount(digest, "../src")


def test_delete_removes_only_the_link(registry: Registry) -> None:
    digest = push(registry, "x/one", b"shared")
    registry.repository("x/two").blobs.mount(digest, "x/one")
    registry.repository("x/one").blobs.delete(digest)
    assert not registry.repository("x/one").blobs.exists(digest)
    assert registry.repository("x/two").blobs.stat(digest).size == 6
    assert registry.driver.stat(p.path_for(p.BlobDataPath(digest))).size == 6


@pytest.mark.parametrize(
    "digest",
    ["sha256:abc", "sha256:" + "A" * 64, "md5:" + "0" * 32, "sha512:" + "0" * 64, "../etc"],
)
def test_bad_digest_is_typed(registry: Registry, digest: str) -> None:
    with pytest.raises(DigestInvalidError) as err:
        registry.repository("a").blobs.stat(digest)
    assert isinstance(err.value, RegistryError) and err.value.code == "DIGEST_INVALID"
