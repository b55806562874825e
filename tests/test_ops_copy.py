"""``layerstore copy`` on the built-in drivers: what is copied, in which order, what is skipped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from layerstore_core import FileInfo, StorageDriver, load_driver
from layerstore_core.cli import main
from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.ops import layout
from layerstore_core.ops.copy import CopyError, CopyOptions, copy_store
from layerstore_core.ops.layout import Kind
from layerstore_core.ops.transfer import STAGING_DIR
from layerstore_core.registry import Registry
from layerstore_core.registry import paths as p
from tests.stores import OTHER_FILE, CountingDriver, assert_same_store, populate, snapshot


def fs(root: Path) -> StorageDriver:
    return load_driver("filesystem", rootdirectory=str(root))


def data_writes(driver: CountingDriver) -> list[str]:
    """Writes other than the staging probe."""
    return [w for w in driver.writes if not w.startswith(STAGING_DIR)]


def test_copy_everything_but_uploads_then_nothing(tmp_path: Path) -> None:
    src, dst = fs(tmp_path / "src"), CountingDriver(fs(tmp_path / "dst"))
    populate(src)
    report = copy_store(src, dst, CopyOptions(jobs=3))
    assert not report.failures
    assert_same_store(src, dst.inner)
    assert dst.inner.get_content(OTHER_FILE.format(repo="lib/app")) == b'{"manifests": []}'
    assert [i.path for i in src.walk(p.path_for(p.RepositoriesPath())) if "_uploads" in i.path]
    assert not [i for i in dst.inner.walk(p.path_for(p.RepositoriesPath()))
                if "_uploads" in i.path]
    assert not (tmp_path / "dst" / STAGING_DIR.lstrip("/")).exists()
    written = data_writes(dst)
    kinds = [layout.blob_entry(w, 0).kind if w.startswith(layout.BLOBS)
             else layout.repository_entry(w, 0).kind for w in written]  # type: ignore[union-attr]
    assert kinds == sorted(kinds), "written out of order"
    assert report.copied_objects == len(snapshot(src))

    dst.writes.clear()
    again = copy_store(src, dst, CopyOptions(jobs=3))
    assert data_writes(dst) == [] and again.copied_objects == 0
    assert again.skipped_objects == report.copied_objects


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    src, dst = fs(tmp_path / "src"), CountingDriver(InMemoryDriver())
    populate(src)
    report = copy_store(src, dst, CopyOptions(dry_run=True))
    assert dst.writes == [] and report.dry_run
    assert report.copied_objects == len(snapshot(src))


def test_corrupt_source_blob_is_not_copied_nor_linked(tmp_path: Path) -> None:
    src, dst = fs(tmp_path / "src"), InMemoryDriver()
    images = populate(src)
    bad = images[1].blobs[1]
    path = p.path_for(p.BlobDataPath(bad))
    data = bytearray(src.get_content(path))
    data[0] ^= 1
    src.put_content(path, bytes(data))
    report = copy_store(src, dst)
    failed = {f for f, _ in report.failures}
    link = p.path_for(p.LayerLinkPath("lib/app", bad))
    assert failed == {path, link}
    with pytest.raises(FileNotFoundError):
        dst.stat(path)
    with pytest.raises(FileNotFoundError):
        dst.stat(link)


def test_verify_recopies_a_corrupt_destination_blob(tmp_path: Path) -> None:
    src, dst = fs(tmp_path / "src"), fs(tmp_path / "dst")
    images = populate(src)
    copy_store(src, dst)
    path = p.path_for(p.BlobDataPath(images[0].blobs[2]))  # the 3 MiB layer: streamed
    data = bytearray(dst.get_content(path))
    data[len(data) // 2] ^= 0xFF
    dst.put_content(path, bytes(data))
    assert copy_store(src, dst).copied_objects == 0  # same size: trusted without --verify
    report = copy_store(src, dst, CopyOptions(verify=True))
    assert report.copied_objects == 1
    assert_same_store(src, dst)


class HidingDriver(CountingDriver):
    """Lists blobs without ``hidden``: as if it was pushed after the copy listed the blobs."""

    def __init__(self, inner: StorageDriver, hidden: str) -> None:
        super().__init__(inner)
        self.hidden = hidden

    def _walk(self, path: str) -> Iterator[FileInfo]:
        return (i for i in self.inner.walk(path) if not i.path.startswith(self.hidden))


def test_a_blob_pushed_after_the_listing_is_copied_before_its_link(tmp_path: Path) -> None:
    inner = fs(tmp_path / "src")
    images = populate(inner)
    late = images[2].blobs[1]
    src = HidingDriver(inner, p.path_for(p.BlobPath(late)))
    dst = CountingDriver(fs(tmp_path / "dst"))
    assert not copy_store(src, dst).failures
    writes = data_writes(dst)
    blob = p.path_for(p.BlobDataPath(late))
    assert writes.index(blob) < writes.index(p.path_for(p.LayerLinkPath("other", late)))
    assert_same_store(inner, dst.inner)


def test_same_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CopyError, match="same store"):
        copy_store(fs(tmp_path / "a"), fs(tmp_path / "a"))


def test_cli_specs_json_and_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    src = fs(tmp_path / "src")
    populate(src)
    config = tmp_path / "dst.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path}/d\n")
    argv = ["copy", f"filesystem:rootdirectory={tmp_path}/src", str(config), "--jobs", "2"]
    assert main([*argv, "--json", "--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] and dry["copied"]["objects"] > 0
    assert not (tmp_path / "d").exists()
    assert main([*argv, "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["copied"] == dry["copied"] and done["failures"] == []
    assert main(argv) == 0
    assert "copied 0 object(s)" in capsys.readouterr().out
    assert_same_store(src, fs(tmp_path / "d"))
    assert main(["copy", "nonsense", str(config)]) == 1
    assert "neither a config file nor" in capsys.readouterr().err
    assert main(["copy", "nosuchdriver:x=1", str(config)]) == 1
    assert "nosuchdriver" in capsys.readouterr().err


def test_tags_come_from_a_snapshot_taken_first(tmp_path: Path) -> None:
    src, dst = fs(tmp_path / "src"), InMemoryDriver()
    populate(src)
    copy_store(src, dst)
    tags = [e for e in layout.scan_repositories(dst) if e.kind == Kind.TAG_CURRENT]
    assert {(e.repository, e.tag) for e in tags} == {
        ("lib/app", "v1"), ("lib/app", "v2"), ("lib/app", "multi"), ("other", "latest")}
    assert Registry(dst).repository("lib/app").manifests.get("multi").digest == \
        Registry(src).repository("lib/app").manifests.get("multi").digest
