"""Manifests, tags and the catalog on every backend."""

from __future__ import annotations

import hashlib
import json

import pytest

from layerstore_core import (
    DigestInvalidError,
    ManifestBlobUnknownError,
    ManifestInvalidError,
    ManifestUnknownError,
    NameUnknownError,
    Registry,
    TagInvalidError,
)
from layerstore_core.registry import PaginationNumberInvalidError
from layerstore_core.registry import paths as p
from layerstore_core.registry.manifests import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
)
from layerstore_core.testing import Backend

REPO = "test/img"


def push_blob(registry: Registry, repo: str, data: bytes) -> dict[str, object]:
    upload = registry.repository(repo).blobs.create_upload()
    upload.write(data)
    digest = upload.commit("sha256:" + hashlib.sha256(data).hexdigest()).digest
    return {"mediaType": "application/octet-stream", "digest": digest, "size": len(data)}


def image(registry: Registry, repo: str = REPO, media_type: str | None = OCI_MANIFEST) -> bytes:
    config = push_blob(registry, repo, b'{"architecture":"amd64"}')
    layer = push_blob(registry, repo, b"layer bytes")
    doc: dict[str, object] = {"schemaVersion": 2, "config": config, "layers": [layer]}
    if media_type:
        doc["mediaType"] = media_type
    return json.dumps(doc, indent=3).encode()


@pytest.fixture
def registry(any_backend: Backend) -> Registry:
    return Registry(any_backend.make())


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST, None])
def test_put_get_by_digest_and_tag(registry: Registry, media_type: str | None) -> None:
    content = image(registry, media_type=media_type)
    manifests = registry.repository(REPO).manifests
    digest = manifests.put(content, media_type or OCI_MANIFEST, tag="v1")
    assert digest == "sha256:" + hashlib.sha256(content).hexdigest()
    for ref in (digest, "v1"):
        got = manifests.get(ref)
        assert got == (content, media_type or OCI_MANIFEST, digest)
        assert manifests.exists(ref)
    assert registry.driver.get_content(p.path_for(p.BlobDataPath(digest))) == content
    assert registry.repository(REPO).tags.get("v1") == digest


def test_index_needs_its_children(registry: Registry) -> None:
    manifests = registry.repository(REPO).manifests
    child = manifests.put(image(registry), OCI_MANIFEST)
    entry = {"mediaType": OCI_MANIFEST, "digest": child, "size": 10}
    for kind in (OCI_INDEX, DOCKER_LIST):
        index = json.dumps({"schemaVersion": 2, "mediaType": kind, "manifests": [entry]}).encode()
        assert manifests.get(manifests.put(index, kind)).media_type == kind
    missing = dict(entry, digest="sha256:" + "0" * 64)
    bad = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [missing]})
    with pytest.raises(ManifestBlobUnknownError) as err:
        manifests.put(bad.encode(), OCI_INDEX)
    assert err.value.detail == [{"digest": "sha256:" + "0" * 64}]
    nomedia = json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()
    assert manifests.get(manifests.put(nomedia, OCI_INDEX)).media_type == OCI_INDEX


def test_blobs_must_be_in_the_repository(registry: Registry) -> None:
    content = image(registry, repo="other/repo")
    with pytest.raises(ManifestBlobUnknownError) as err:
        registry.repository(REPO).manifests.put(content, OCI_MANIFEST)
    assert (err.value.code, err.value.status) == ("MANIFEST_BLOB_UNKNOWN", 400)
    assert len(err.value.detail) == 2


@pytest.mark.parametrize(
    ("content", "media_type"),
    [
        (b"not json", OCI_MANIFEST),
        (b"[1, 2]", OCI_MANIFEST),
        (b'{"schemaVersion": 1}', OCI_MANIFEST),
        (b'{"schemaVersion": 2, "mediaType": "text/plain", "layers": []}', "text/plain"),
        (b'{"schemaVersion": 2, "config": {}, "layers": []}', OCI_MANIFEST),
        (b'{"schemaVersion": 2, "config": {}, "layers": []}', DOCKER_MANIFEST),
        (b'{"schemaVersion": 2, "mediaType": "' + OCI_INDEX.encode() + b'"}', OCI_MANIFEST),
        (b"\xff\xfe", OCI_MANIFEST),
    ],
)
def test_invalid_manifests(registry: Registry, content: bytes, media_type: str) -> None:
    with pytest.raises(ManifestInvalidError) as err:
        registry.repository(REPO).manifests.put(content, media_type)
    assert err.value.code == "MANIFEST_INVALID"


def test_unknown_manifest_and_tag(registry: Registry) -> None:
    manifests = registry.repository(REPO).manifests
    for ref in ("latest", "sha256:" + "1" * 64):
        with pytest.raises(ManifestUnknownError):
            manifests.get(ref)
        assert not manifests.exists(ref)
    for bad in ("-bad", ".INVALID_MANIFEST_NAME"):  # cannot exist, so unknown (OCI: 404)
        with pytest.raises(ManifestUnknownError):
            manifests.get(bad)
        with pytest.raises(TagInvalidError):
            manifests.put(image(registry), OCI_MANIFEST, tag=bad)
    with pytest.raises(DigestInvalidError):
        manifests.get("sha256:short")


def test_tags_list_paginate_untag(registry: Registry) -> None:
    repo = registry.repository(REPO)
    with pytest.raises(NameUnknownError):
        repo.tags.list()
    digest = repo.manifests.put(image(registry), OCI_MANIFEST)
    assert repo.tags.list() == []
    for tag in ("v2", "latest", "v1", "V0", "_x"):
        repo.tags.tag(tag, digest)
    assert repo.tags.list() == ["V0", "_x", "latest", "v1", "v2"]
    assert repo.tags.list(n=2) == ["V0", "_x"]
    assert repo.tags.list(n=2, last="_x") == ["latest", "v1"]
    assert repo.tags.list(last="v2") == []
    assert repo.tags.list(n=0) == []
    repo.tags.untag("latest")
    assert "latest" not in repo.tags.list()
    with pytest.raises(ManifestUnknownError):
        repo.tags.untag("latest")
    with pytest.raises(ManifestUnknownError):
        repo.tags.tag("v3", "sha256:" + "2" * 64)
    with pytest.raises(TagInvalidError):
        repo.tags.tag("../v3", digest)


def test_delete_unlinks_revision_and_its_tags(registry: Registry) -> None:
    repo = registry.repository("test/del")
    digest = repo.manifests.put(image(registry, "test/del"), OCI_MANIFEST, tag="v1")
    repo.tags.tag("v2", digest)
    repo.manifests.delete(digest)
    assert not repo.manifests.exists(digest)
    assert repo.tags.list() == []
    files = {i.path for i in registry.driver.walk("/") if not i.is_dir}
    assert not [f for f in files if "/_manifests/" in f]
    assert p.path_for(p.BlobDataPath(digest)) in files  # garbage collection's job
    with pytest.raises(ManifestUnknownError):
        repo.manifests.delete(digest)


def test_delete_many_drops_history_and_keeps_other_tags(registry: Registry) -> None:
    """Garbage collection's delete: tags moved away keep their current link, lose the history."""
    repo = registry.repository("test/dm")
    old = repo.manifests.put(image(registry, "test/dm"), OCI_MANIFEST, tag="v1")
    doc = json.loads(image(registry, "test/dm"))
    doc["annotations"] = {"n": "2"}
    new = repo.manifests.put(json.dumps(doc).encode(), OCI_MANIFEST, tag="v1")  # v1 moves
    gone = repo.manifests.put(json.dumps({**doc, "annotations": {"n": "3"}}).encode(),
                              OCI_MANIFEST, tag="v2")
    repo.manifests.delete_many([old, gone, "sha256:" + "0" * 64])
    assert not repo.manifests.exists(old) and not repo.manifests.exists(gone)
    assert repo.tags.list() == ["v1"] and repo.tags.get("v1") == new
    files = {i.path for i in registry.driver.walk("/") if not i.is_dir and "/_manifests/" in i.path}
    assert files == {p.path_for(p.ManifestRevisionLinkPath("test/dm", new)),
                     p.path_for(p.ManifestTagCurrentPath("test/dm", "v1")),
                     p.path_for(p.ManifestTagIndexEntryPath("test/dm", "v1", new))}


def test_catalog(registry: Registry) -> None:
    assert registry.catalog() == []
    for name in ("b/c", "a", "a/b/c", "a-b", "zz"):
        repo = registry.repository(name)
        repo.manifests.put(image(registry, name), OCI_MANIFEST, tag="t")
    push_blob(registry, "blobs/only", b"no manifest: not in the catalog")
    assert registry.catalog() == ["a", "a-b", "a/b/c", "b/c", "zz"]
    assert registry.catalog(n=2) == ["a", "a-b"]
    assert registry.catalog(n=2, last="a-b") == ["a/b/c", "b/c"]


@pytest.mark.parametrize("n", [-1, "3", True, 1.5])
def test_bad_page_size_is_pagination_number_invalid(registry: Registry, n: object) -> None:
    repo = registry.repository(REPO)
    repo.manifests.put(image(registry), OCI_MANIFEST, tag="t")
    with pytest.raises(PaginationNumberInvalidError) as caught:
        repo.tags.list(n=n)  # type: ignore[arg-type]
    assert caught.value.code == "PAGINATION_NUMBER_INVALID" and caught.value.status == 400
    with pytest.raises(PaginationNumberInvalidError):
        registry.catalog(n=n)  # type: ignore[arg-type]
