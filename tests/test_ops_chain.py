"""``layerstore copy`` end to end, across real backends and registries.

- A store built by skopeo pushes goes filesystem → S3 (moto) → Azure (Azurite) → GCS
  (gcp-storage-emulator) → filesystem and comes back byte for byte; Distribution 2.8.2 serves
  the S3 copy and skopeo pulls every image from it.
- A copy killed mid-run completes when run again, writing no blob it had finished.
- Pushes to the source during a copy are in the destination after the next run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from layerstore_core import StorageDriver, load_driver
from layerstore_core.cli import main
from layerstore_core.ops import layout
from layerstore_core.ops.copy import copy_store
from layerstore_core.ops.verify import verify_store
from layerstore_core.registry import Registry
from layerstore_core.testing import Backend
from tests.backends._servers import free_port
from tests.images import (
    ImageLayout,
    MiB,
    RegistryProcess,
    build_oci_layout,
    read_oci_layout,
    skopeo,
    write_config,
    write_policy,
)
from tests.stores import CountingDriver, push_image, snapshot

DISTRIBUTION = "/usr/bin/docker-registry"
#: (repository, tag, image index) pushed to the source; "base" gets its layers by mounting.
PUSHES = [("app/one", "v1", 0), ("app/one", "v2", 1), ("base", "latest", 0)]


def spec(backend: Backend) -> str:
    return backend.driver + ":" + ",".join(f"{k}={v}" for k, v in backend.params.items())


def fs(root: Path) -> StorageDriver:
    return load_driver("filesystem", rootdirectory=str(root))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[ImageLayout]:
    assert shutil.which("skopeo"), "skopeo is required (apt-get install skopeo)"
    work = tmp_path_factory.mktemp("chain-images")
    return [build_oci_layout(work / "one", (4096, 1 * MiB, 6 * MiB), tag="v", seed=1),
            build_oci_layout(work / "two", (2048, 2 * MiB), tag="v", seed=2)]


def push(host: str, image: ImageLayout, repo: str, tag: str, policy: Path) -> None:
    done = skopeo("copy", "--dest-tls-verify=false", f"oci:{image.path}:v",
                  f"docker://{host}/{repo}:{tag}", policy=policy)
    assert done.returncode == 0, done.stderr


def pull_and_check(host: str, image: ImageLayout, repo: str, tag: str, policy: Path,
                   out: Path) -> None:
    done = skopeo("copy", "--src-tls-verify=false", f"docker://{host}/{repo}:{tag}",
                  f"oci:{out}:v", policy=policy)
    assert done.returncode == 0, done.stderr
    assert read_oci_layout(out, "v") == (image.manifest_digest, image.blob_digests)


def test_chain_of_backends_and_distribution_serves_the_s3_copy(
    tmp_path: Path, images: list[ImageLayout], backend_s3: Backend, backend_azure: Backend,
    backend_gcs_emulator: Backend,
) -> None:
    assert os.access(DISTRIBUTION, os.X_OK), "apt-get install docker-registry (Distribution)"
    policy = write_policy(tmp_path / "policy.json")
    start = {"rootdirectory": str(tmp_path / "start")}
    port = free_port()
    config = write_config(tmp_path / "src.yml", "filesystem", start, port)
    with RegistryProcess.layerstore(config, port, tmp_path / "src.log"):
        host = f"127.0.0.1:{port}"
        for repo, tag, i in PUSHES:
            push(host, images[i], repo, tag, policy)
        left = httpx.post(f"http://{host}/v2/base/blobs/uploads/")  # an upload in progress
        assert left.status_code == 202
    end = tmp_path / "end"
    hops = [f"filesystem:rootdirectory={start['rootdirectory']}", spec(backend_s3),
            spec(backend_azure), spec(backend_gcs_emulator), f"filesystem:rootdirectory={end}"]
    for src, dst in zip(hops, hops[1:], strict=False):
        assert main(["copy", src, dst, "--jobs", "4"]) == 0, (src, dst)
    assert snapshot(fs(tmp_path / "start")) == snapshot(fs(end))
    assert any("_uploads" in i.path for i in fs(tmp_path / "start").walk("/"))
    assert not any("_uploads" in i.path for i in fs(end).walk("/"))

    port = free_port()
    s3 = {**backend_s3.params, "secure": False, "v4auth": True}
    dist = write_config(tmp_path / "dist.yml", "s3", s3, port,
                        {"storage": {"redirect": {"disable": True}}})
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    with RegistryProcess([DISTRIBUTION, "serve", str(dist)], port, tmp_path / "dist.log",
                         env).wait_ready(60) as registry:
        host = f"127.0.0.1:{registry.port}"
        for repo, tag, i in PUSHES:
            out = tmp_path / f"pull-{repo.replace('/', '-')}-{tag}"
            pull_and_check(host, images[i], repo, tag, policy, out)


def _blobs(driver: StorageDriver) -> dict[str, int]:
    return {e.path: e.size for e in layout.scan_blobs(driver)}


def test_killed_copy_completes_without_rewriting_finished_blobs(
    tmp_path: Path, backend_s3: Backend
) -> None:
    src = fs(tmp_path / "src")
    push_image(Registry(src), "big", "v1", [2 * MiB] * 8, seed=5)
    source_blobs = _blobs(src)
    argv = [sys.executable, "-m", "layerstore_core.cli", "copy",
            f"filesystem:rootdirectory={tmp_path / 'src'}", spec(backend_s3),
            "--jobs", "1", "--rate-limit", "2M"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dst = backend_s3.make()
    deadline = time.monotonic() + 120
    try:
        while len(_blobs(dst)) < 3:
            assert proc.poll() is None, f"copy ended before it was killed: {proc.stderr}"
            assert time.monotonic() < deadline, "copy made no progress"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finished = _blobs(dst)
    assert 3 <= len(finished) < len(source_blobs)
    assert all(source_blobs[path] == size for path, size in finished.items())

    counting = CountingDriver(dst)
    report = copy_store(src, counting)
    assert not report.failures
    rewritten = set(counting.writes) & set(finished)
    assert not rewritten, rewritten
    assert set(source_blobs) - set(finished) <= set(counting.writes)
    assert snapshot(src) == snapshot(dst)


def test_pushes_during_a_copy_arrive_with_the_next_run(
    tmp_path: Path, images: list[ImageLayout]
) -> None:
    policy = write_policy(tmp_path / "policy.json")
    root = tmp_path / "src"
    push_image(Registry(fs(root)), "early", "v1", [1 * MiB] * 6, seed=9)
    port = free_port()
    config = write_config(tmp_path / "src.yml", "filesystem", {"rootdirectory": str(root)}, port)
    argv = [sys.executable, "-m", "layerstore_core.cli", "copy",
            f"filesystem:rootdirectory={root}", f"filesystem:rootdirectory={tmp_path / 'dst'}",
            "--jobs", "1", "--rate-limit", "1M"]
    with RegistryProcess.layerstore(config, port, tmp_path / "src.log"):
        copying = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        push(f"127.0.0.1:{port}", images[1], "late", "v1", policy)
        assert copying.poll() is None, "the push did not happen during the copy"
        _, err = copying.communicate(timeout=300)
        assert copying.returncode == 0, err
    dst = fs(tmp_path / "dst")
    assert verify_store(dst).problems == []  # consistent, whatever the push left out
    assert main(["copy", f"filesystem:rootdirectory={root}",
                 f"filesystem:rootdirectory={tmp_path / 'dst'}"]) == 0
    assert Registry(dst).repository("late").manifests.get("v1").digest == \
        images[1].manifest_digest
    assert snapshot(fs(root)) == snapshot(dst)
