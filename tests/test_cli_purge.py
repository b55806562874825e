"""`layerstore purge-uploads` as a process: each upload reported once, --dry-run, --json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from layerstore_core import Registry, load_driver
from layerstore_core.errors import PathNotFoundError
from layerstore_core.registry.leases import StorageLease, lease_path


def _purge(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    run = subprocess.run([sys.executable, "-m", "layerstore_core.cli", "purge-uploads",
                          "--config", str(config), "--age", "0s", *args],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run


def _store(tmp_path: Path) -> tuple[Path, Registry, list[str]]:
    """Uploads left in three repositories (one nested in another), at the default log level."""
    root = tmp_path / "root"
    registry = Registry(load_driver("filesystem", rootdirectory=str(root)))
    ids = []
    for name in ("a", "a/b", "c"):
        upload = registry.repository(name).blobs.create_upload()
        upload.write(b"abandoned")
        upload.close()
        ids.append(upload.id)
    config = tmp_path / "config.yml"
    config.write_text(f"log:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {root}\n")
    return config, registry, ids


def test_each_upload_is_reported_once(tmp_path: Path) -> None:
    config, registry, ids = _store(tmp_path)
    for args, verb in ((("--dry-run",), "would purge"), ((), "purged")):
        run = _purge(config, *args)
        both = run.stdout + run.stderr
        assert [both.count(upload_id) for upload_id in ids] == [1, 1, 1], both
        assert run.stdout.splitlines()[-1] == f"{verb} 3 upload(s)"
    assert _purge(config).stdout == "purged 0 upload(s)\n"
    assert not [i.path for i in registry.driver.walk("/") if "/_uploads/" in i.path]


def test_json_lists_each_upload_once(tmp_path: Path) -> None:
    config, registry, ids = _store(tmp_path)
    dry = json.loads(_purge(config, "--dry-run", "--json").stdout)
    assert dry["dry_run"] is True and dry["age_seconds"] == 0
    assert sorted((u["repository"], u["id"]) for u in dry["uploads"]) == sorted(
        zip(("a", "a/b", "c"), ids, strict=True))
    assert registry.repository("a/b").blobs.resume_upload(ids[1]).offset == 9  # untouched

    done = _purge(config, "--json")
    assert json.loads(done.stdout)["uploads"] == dry["uploads"]
    assert not any(upload_id in done.stderr for upload_id in ids)
    assert json.loads(_purge(config, "--json").stdout)["uploads"] == []


def test_takes_the_fleet_lease_and_says_who_holds_it(tmp_path: Path) -> None:
    """The servers' ``uploadpurge`` lease: while another purger holds it, exit 1 and purge none."""
    config, registry, ids = _store(tmp_path)
    holder = StorageLease(registry.driver, "uploadpurge", settle=0)
    holder.acquire()
    busy = subprocess.run([sys.executable, "-m", "layerstore_core.cli", "purge-uploads",
                           "--config", str(config), "--age", "0s"],
                          capture_output=True, text=True, timeout=120)
    assert busy.returncode == 1 and busy.stdout == ""
    assert "another purger is running" in busy.stderr and holder.owner in busy.stderr, busy.stderr
    assert registry.repository("c").blobs.resume_upload(ids[2]).offset == 9  # untouched
    assert _purge(config, "--dry-run").stdout.splitlines()[-1] == "would purge 3 upload(s)"
    holder.release()
    assert _purge(config).stdout.splitlines()[-1] == "purged 3 upload(s)"
    with pytest.raises(PathNotFoundError):  # released when done
        registry.driver.stat(lease_path("uploadpurge"))
