"""``layerstore verify``: it finds damage, says where, exits 1, and ``--repair`` fixes blobs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from layerstore_core import StorageDriver, load_driver
from layerstore_core.cli import main
from layerstore_core.ops.copy import copy_store
from layerstore_core.ops.verify import VerifyOptions, verify_store
from layerstore_core.registry import paths as p
from layerstore_core.testing import Backend
from tests.stores import Image, populate


def fs(root: Path) -> StorageDriver:
    return load_driver("filesystem", rootdirectory=str(root))


def spec(backend: Backend) -> str:
    return backend.driver + ":" + ",".join(f"{k}={v}" for k, v in backend.params.items())


def flip_byte(driver: StorageDriver, digest: str) -> str:
    path = p.path_for(p.BlobDataPath(digest))
    data = bytearray(driver.get_content(path))
    data[len(data) // 2] ^= 0x40
    driver.put_content(path, bytes(data))
    return path


def damage(driver: StorageDriver, images: list[Image]) -> tuple[str, str, str]:
    """A flipped byte, a deleted blob data file, a dangling tag; their paths."""
    flipped = flip_byte(driver, images[0].blobs[2])
    deleted = p.path_for(p.BlobDataPath(images[1].blobs[1]))
    driver.delete(deleted)
    dangling = p.path_for(p.ManifestTagCurrentPath("other", "gone"))
    driver.put_content(dangling, b"sha256:" + b"ab" * 32)
    return flipped, deleted, dangling


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code = main(["verify", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_verify_finds_and_repairs_from_a_second_backend(
    tmp_path: Path, backend_s3: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    store = fs(tmp_path / "store")
    images = populate(store)
    copy_store(store, backend_s3.make())  # the mirror
    target = f"filesystem:rootdirectory={tmp_path / 'store'}"
    assert run_json(capsys, target)[0] == 0
    flipped, deleted, dangling = damage(store, images)

    code, found = run_json(capsys, target)
    assert code == 1
    kinds = {(pr["kind"], pr["digest"]) for pr in found["problems"]}  # type: ignore[attr-defined]
    assert ("blob-corrupt", images[0].blobs[2]) in kinds
    assert ("blob-missing", images[1].blobs[1]) in kinds
    assert ("tag-dangling", "sha256:" + "ab" * 32) in kinds
    assert len(found["problems"]) == 3, found  # type: ignore[arg-type]
    paths = {pr["path"] for pr in found["problems"]}  # type: ignore[attr-defined]
    assert flipped in paths and dangling in paths

    code, fixed = run_json(capsys, target, "--repair", spec(backend_s3))
    assert code == 1  # the dangling tag is not a blob: it stays
    assert fixed["unrepaired"] == 1 and len(fixed["repaired"]) == 2  # type: ignore[arg-type]
    assert store.get_content(deleted) == backend_s3.make().get_content(deleted)
    code, after = run_json(capsys, target)
    assert [pr["kind"] for pr in after["problems"]] == ["tag-dangling"]  # type: ignore[attr-defined]
    store.delete(p.path_for(p.ManifestTagPath("other", "gone")))
    assert main(["verify", target]) == 0
    assert "0 problem(s)" in capsys.readouterr().out


def test_repair_refuses_a_replacement_that_does_not_match(tmp_path: Path) -> None:
    store, mirror = fs(tmp_path / "store"), fs(tmp_path / "mirror")
    images = populate(store)
    copy_store(store, mirror)
    flip_byte(store, images[0].blobs[1])
    flip_byte(mirror, images[0].blobs[1])
    before = store.get_content(p.path_for(p.BlobDataPath(images[0].blobs[1])))
    code = main(["verify", f"filesystem:rootdirectory={tmp_path / 'store'}",
                 "--repair", f"filesystem:rootdirectory={tmp_path / 'mirror'}"])
    assert code == 1
    assert store.get_content(p.path_for(p.BlobDataPath(images[0].blobs[1]))) == before


def test_one_repository_and_samples(tmp_path: Path) -> None:
    store = fs(tmp_path / "store")
    images = populate(store)
    flip_byte(store, images[2].blobs[1])  # in "other" only
    only_app = verify_store(store, VerifyOptions(repositories=("lib/app",)))
    assert only_app.problems == []
    assert only_app.blobs_checked == len({*images[0].blobs, *images[1].blobs}) + 3  # manifests
    only_other = verify_store(store, VerifyOptions(repositories=("other",)))
    assert [pr.kind for pr in only_other.problems] == ["blob-corrupt"]
    sample = verify_store(store, VerifyOptions(sample=2), rng=random.Random(1))
    assert sample.blobs_checked == 2 and sample.links_checked > 0
    half = verify_store(store, VerifyOptions(sample=0.5))
    total = verify_store(store).blobs_checked
    assert half.blobs_checked == round(total / 2)


def test_invalid_links_and_manifests(tmp_path: Path) -> None:
    store = fs(tmp_path / "store")
    images = populate(store)
    link = p.path_for(p.LayerLinkPath("lib/app", images[0].blobs[1]))
    store.put_content(link, b"sha256:" + b"cd" * 32)
    manifest = p.path_for(p.BlobDataPath(images[2].manifest))
    store.put_content(manifest, b"not json")
    kinds = sorted(pr.kind for pr in verify_store(store).problems)
    # the damaged link breaks v1's manifest too; the manifest's own bytes no longer hash right
    assert kinds == ["blob-corrupt", "link-invalid", "manifest-invalid",
                     "manifest-reference-missing"]


def test_verify_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = f"filesystem:rootdirectory={tmp_path}"
    assert main(["verify", target, "--sample", "0"]) == 1
    assert "--sample" in capsys.readouterr().err
    assert main(["verify", target, "--rate-limit", "fast"]) == 1
    assert "byte rate" in capsys.readouterr().err
