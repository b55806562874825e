"""``layerstore gc`` on stores built by real skopeo pushes, on every shared backend, while the
registry keeps serving; and against Distribution 2.8.2's ``garbage-collect`` on the same store.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from layerstore_core.driver import StorageDriver
from layerstore_core.gc import StorageLease
from layerstore_core.registry import Registry
from layerstore_core.testing import Backend
from tests.backends._servers import free_port
from tests.gc_scenario import Images, blob_digests, build_images, pull_tagged, push_scenario
from tests.images import RegistryProcess, write_config, write_policy

DISTRIBUTION = "/usr/bin/docker-registry"
NO_GRACE = dt.timedelta(0)


def quick_lease(driver: StorageDriver) -> StorageLease:
    """The storage lease with a short settle time (one collector per test)."""
    return StorageLease(driver, settle=0.05)


@pytest.fixture(scope="session")
def gc_images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    assert shutil.which("skopeo"), "skopeo is required (apt-get install skopeo)"
    return build_images(tmp_path_factory.mktemp("gc-images"))


def run_gc(config: Path, *flags: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "layerstore_core.cli", "gc", "--config", str(config),
         "--grace", "0s", "--json", *flags],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stderr
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def test_gc_on_pushed_store(shared_backend: Backend, gc_images: Images, tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path / "config.yml", shared_backend.driver,
                          shared_backend.params, port)
    policy = write_policy(tmp_path / "policy.json")
    driver = shared_backend.make()
    with RegistryProcess.layerstore(config, port, tmp_path / "server.log"):
        host = f"127.0.0.1:{port}"
        scenario = push_scenario(host, gc_images, policy, tmp_path)
        before = blob_digests(driver)
        assert scenario.default | scenario.untagged <= before

        dry = run_gc(config, "--dry-run")
        assert set(dry["blobs_deleted"]) == scenario.default
        assert blob_digests(driver) == before, "--dry-run deleted something"

        report = run_gc(config)
        assert set(report["blobs_deleted"]) == scenario.default
        assert blob_digests(driver) == before - scenario.default
        registry = Registry(driver)
        again = registry.collect_garbage(grace=NO_GRACE, lease=quick_lease(driver))
        assert again.blobs_deleted == [] and again.manifests_deleted == []

        untagged = registry.collect_garbage(grace=NO_GRACE, delete_untagged=True,
                                            lease=quick_lease(driver))
        assert set(untagged.blobs_deleted) == scenario.untagged
        assert {d for _, d in untagged.manifests_deleted} == {
            gc_images.old.manifest_digest, gc_images.gone.manifest_digest}
        assert blob_digests(driver) == before - scenario.default - scenario.untagged
        twice = registry.collect_garbage(grace=NO_GRACE, delete_untagged=True,
                                         lease=quick_lease(driver))
        assert twice.blobs_deleted == [] and twice.manifests_deleted == []

        pull_tagged(host, gc_images, policy, tmp_path)


def _distribution_config(path: Path, root: Path, port: int) -> Path:
    path.write_text(yaml.safe_dump({
        "version": 0.1, "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "shared-test-secret"},
    }))
    return path


def test_gc_matches_distribution(gc_images: Images, tmp_path: Path) -> None:
    assert Path(DISTRIBUTION).exists(), "apt-get install docker-registry (Distribution 2.8.2)"
    from layerstore_core import load_driver

    port = free_port()
    built = tmp_path / "built"
    config = write_config(tmp_path / "config.yml", "filesystem", {"rootdirectory": str(built)},
                          port)
    policy = write_policy(tmp_path / "policy.json")
    with RegistryProcess.layerstore(config, port, tmp_path / "server.log"):
        scenario = push_scenario(f"127.0.0.1:{port}", gc_images, policy, tmp_path)
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    shutil.copytree(built, ours)
    shutil.copytree(built, theirs)
    before = blob_digests(load_driver("filesystem", rootdirectory=str(built)))

    dist = subprocess.run(
        [DISTRIBUTION, "garbage-collect", str(_distribution_config(
            tmp_path / "dist.yml", theirs, free_port()))],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert dist.returncode == 0, dist.stdout + dist.stderr
    ours_config = write_config(tmp_path / "ours.yml", "filesystem", {"rootdirectory": str(ours)},
                               free_port())
    run_gc(ours_config)
    left_theirs = blob_digests(load_driver("filesystem", rootdirectory=str(theirs)))
    left_ours = blob_digests(load_driver("filesystem", rootdirectory=str(ours)))
    assert before - left_theirs == scenario.default
    assert left_ours == left_theirs

    port = free_port()
    serve = _distribution_config(tmp_path / "serve.yml", ours, port)
    with RegistryProcess([DISTRIBUTION, "serve", str(serve)], port, tmp_path / "dist.log"):
        pull_tagged(f"127.0.0.1:{port}", gc_images, policy, tmp_path)
