"""A store built by real skopeo pushes for the gc tests, and what gc must delete from it.

``push_scenario`` pushes, through a running registry, single-arch images, an OCI index of two
platforms, a tag moved to another image, a tag deleted, a manifest deleted by digest and a blob
uploaded but never referenced. ``Scenario`` says which digests each gc mode must delete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import httpx

from layerstore_core.driver import StorageDriver
from layerstore_core.errors import PathNotFoundError
from tests.images import (
    ImageLayout,
    IndexLayout,
    build_oci_index,
    build_oci_layout,
    read_oci_layout,
    skopeo,
)

REPO = "gc/app"
SIZES = (3000, 9000)


@dataclasses.dataclass(frozen=True)
class Images:
    """The layouts pushed (built once per session)."""

    v1: ImageLayout
    old: ImageLayout
    new: ImageLayout
    multi: IndexLayout
    gone: ImageLayout
    deleted: ImageLayout


def build_images(root: Path) -> Images:
    return Images(
        v1=build_oci_layout(root / "v1", SIZES, tag="v1", seed=11),
        old=build_oci_layout(root / "old", SIZES, tag="v2", seed=12),
        new=build_oci_layout(root / "new", SIZES, tag="v2", seed=13),
        multi=build_oci_index(root / "multi", [("amd64", SIZES), ("arm64", SIZES)], "multi", 14),
        gone=build_oci_layout(root / "gone", SIZES, tag="gone", seed=16),
        deleted=build_oci_layout(root / "deleted", SIZES, tag="del", seed=17),
    )


def _all(image: ImageLayout) -> set[str]:
    return {image.manifest_digest, *image.blob_digests}


@dataclasses.dataclass(frozen=True)
class Scenario:
    """Digests gc must delete in each mode (beyond what an earlier mode deleted)."""

    orphan: str
    default: set[str]
    untagged: set[str]


def push_scenario(host: str, images: Images, policy: Path, tmp: Path) -> Scenario:
    """Push everything through the registry at ``host``, then delete a tag and a manifest."""
    def push(layout: Path, tag: str, *extra: str) -> None:
        out = skopeo("copy", "--dest-tls-verify=false", *extra, f"oci:{layout}:{tag}",
                     f"docker://{host}/{REPO}:{tag}", policy=policy)
        assert out.returncode == 0, out.stderr

    push(images.v1.path, "v1")
    push(images.old.path, "v2")
    push(images.new.path, "v2")  # the tag moves; the old image is untagged
    push(images.multi.path, "multi", "--all")
    push(images.gone.path, "gone")
    push(images.deleted.path, "del")
    base = f"http://{host}/v2/{REPO}"
    assert httpx.delete(f"{base}/manifests/gone").status_code == 202
    assert httpx.delete(f"{base}/manifests/{images.deleted.manifest_digest}").status_code == 202
    data = os.urandom(5000)
    orphan = "sha256:" + hashlib.sha256(data).hexdigest()
    r = httpx.post(f"{base}/blobs/uploads/", params={"digest": orphan}, content=data)
    assert r.status_code == 201, r.text
    return Scenario(
        orphan=orphan,
        default=_all(images.deleted) | {orphan},
        untagged=_all(images.old) | _all(images.gone),
    )


def blob_digests(driver: StorageDriver) -> set[str]:
    """Every blob whose data is in the store."""
    root = "/docker/registry/v2/blobs"
    try:
        found = list(driver.walk(root))
    except PathNotFoundError:
        return set()
    return {f"{i.path.split('/')[-4]}:{i.path.split('/')[-2]}"
            for i in found if not i.is_dir and i.path.endswith("/data")}


def pull_tagged(host: str, images: Images, policy: Path, tmp: Path) -> None:
    """Every tagged image pulls completely, with the digests pushed."""
    for image in (images.v1, images.new):
        out = tmp / f"pull-{image.tag}"
        pulled = skopeo("copy", "--src-tls-verify=false", f"docker://{host}/{REPO}:{image.tag}",
                        f"oci:{out}:{image.tag}", policy=policy)
        assert pulled.returncode == 0, pulled.stderr
        assert read_oci_layout(out, image.tag) == (image.manifest_digest, image.blob_digests)
    out = tmp / "pull-multi"
    pulled = skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{host}/{REPO}:multi",
                    f"oci:{out}:multi", policy=policy)
    assert pulled.returncode == 0, pulled.stderr
    present = {f"sha256:{p.name}" for p in (out / "blobs" / "sha256").iterdir()}
    assert images.multi.all_digests <= present
