"""Names, tags, digests and the path mapper: typed errors before any driver call."""

from __future__ import annotations

import dataclasses
import typing

import pytest

import layerstore_core
from layerstore_core import (
    DigestInvalidError,
    NameInvalidError,
    Registry,
    RegistryError,
    TagInvalidError,
)
from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.registry import errors
from layerstore_core.registry import paths as p
from layerstore_core.registry.names import validate_digest, validate_name, validate_tag

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "name", ["a", "test/img", "a.b/c_d/e__f/g--h", "0/1", "a" * 255, "x-y/z.z"]
)
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "A", "a/", "/a", "a//b", "../a", "a/../b", "a/.", "_a", "a_", "a___b", "a.-b", "a" * 256,
     "a/_uploads", "a b", "é", 3, None],
)  # fmt: skip
def test_invalid_names_fail_before_the_driver(name: object) -> None:
    registry = Registry(InMemoryDriver())
    with pytest.raises(NameInvalidError) as err:
        registry.repository(name)  # type: ignore[arg-type]
    assert (err.value.code, err.value.status) == ("NAME_INVALID", 400)


@pytest.mark.parametrize("tag", ["v1", "latest", "_x", "A.b-c_D", "x" * 128])
def test_valid_tags(tag: str) -> None:
    assert validate_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", ".", "..", "-a", ".a", "a/b", "x" * 129, "a:b", "é"])
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(TagInvalidError):
        validate_tag(tag)


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:",
        "sha256:" + "a" * 63,
        "sha256:" + "G" * 64,
        "sha512:" + "a" * 64,
        "md5:00",
        D + "\n",
    ],
)
def test_invalid_digests(digest: str) -> None:
    with pytest.raises(DigestInvalidError):
        validate_digest(digest)
    assert validate_digest("sha512:" + "0" * 128)


def test_paths_match_distribution_layout() -> None:
    r = "/docker/registry/v2"
    expected = {
        p.BlobDataPath(D): f"{r}/blobs/sha256/ab/{D[7:]}/data",
        p.LayerLinkPath("t/i", D): f"{r}/repositories/t/i/_layers/sha256/{D[7:]}/link",
        p.UploadDataPath("t/i", "u"): f"{r}/repositories/t/i/_uploads/u/data",
        p.UploadStartedAtPath("t/i", "u"): f"{r}/repositories/t/i/_uploads/u/startedat",
        p.UploadHashStatePath("t/i", "u", "sha256", 1000): (
            f"{r}/repositories/t/i/_uploads/u/hashstates/sha256/1000"
        ),
        p.ManifestRevisionLinkPath("t/i", D): (
            f"{r}/repositories/t/i/_manifests/revisions/sha256/{D[7:]}/link"
        ),
        p.ManifestTagCurrentPath(
            "t/i", "v1"
        ): f"{r}/repositories/t/i/_manifests/tags/v1/current/link",
        p.ManifestTagIndexEntryPath("t/i", "v1", D): (
            f"{r}/repositories/t/i/_manifests/tags/v1/index/sha256/{D[7:]}/link"
        ),
    }
    for spec, path in expected.items():
        assert p.path_for(spec) == path


def test_every_path_spec_maps() -> None:
    values = {"digest": D, "name": "a/b", "id": "u", "alg": "sha256", "offset": 5, "tag": "t",
              "subject": D}
    for spec_type in typing.get_args(p.PathSpec):
        fields = {f.name: values[f.name] for f in dataclasses.fields(spec_type)}
        assert p.path_for(spec_type(**fields)).startswith(p.ROOT)


def test_error_tree_codes() -> None:
    codes = {
        (cls.code, cls.status)
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, RegistryError) and cls is not RegistryError
    }
    assert codes == {
        ("BLOB_UNKNOWN", 404), ("BLOB_UPLOAD_UNKNOWN", 404), ("BLOB_UPLOAD_INVALID", 400),
        ("DIGEST_INVALID", 400), ("SIZE_INVALID", 400), ("NAME_INVALID", 400),
        ("NAME_UNKNOWN", 404), ("MANIFEST_UNKNOWN", 404), ("MANIFEST_INVALID", 400),
        ("MANIFEST_INVALID", 413), ("MANIFEST_BLOB_UNKNOWN", 400), ("TAG_INVALID", 400),
        ("RANGE_INVALID", 416), ("UNSUPPORTED", 405), ("PAGINATION_NUMBER_INVALID", 400),
        ("UNAUTHORIZED", 401),
    }  # fmt: skip
    for name in errors.__all__:
        assert getattr(layerstore_core, name) is getattr(errors, name)
