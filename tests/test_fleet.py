"""A fleet tested as one: three ``layerstore serve`` behind nginx, sharing a backend and Redis.

On the filesystem and on S3 (moto), skopeo pushes and pulls through nginx (round robin) while
an instance is killed mid-push, a blob is deleted through one instance, and Redis is flushed
and then stopped; every answer is checked against what was pushed. Podman (vfs storage, its own
--root/--runroot: the helper of tests/test_clients_tokenauth.py) pulls and pushes through nginx.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from layerstore_core.testing import Backend
from tests.backends._servers import free_port
from tests.conftest import backend_fixture_name
from tests.fleet import Fleet, RedisServer, established
from tests.images import (
    ImageLayout,
    RegistryProcess,
    build_oci_layout,
    read_oci_layout,
    skopeo,
    write_config,
    write_policy,
)
from tests.test_clients_tokenauth import _podman as podman

MiB = 2**20
TIMEOUT = 60


def push(layout: ImageLayout, host: str, ref: str, policy: Path, retries: int = 0) -> None:
    args = ["copy", "--dest-tls-verify=false", f"oci:{layout.path}:{layout.tag}",
            f"docker://{host}/{ref}"]
    if retries:
        args[1:1] = ["--retry-times", str(retries)]
    result = skopeo(*args, policy=policy)
    assert result.returncode == 0, result.stderr


def pull_and_check(layout: ImageLayout, host: str, ref: str, dest: Path, policy: Path) -> None:
    result = skopeo("copy", "--src-tls-verify=false", f"docker://{host}/{ref}",
                    f"oci:{dest}:{layout.tag}", policy=policy)
    assert result.returncode == 0, result.stderr
    manifest, blobs = read_oci_layout(dest, layout.tag)
    assert manifest == layout.manifest_digest
    assert blobs == layout.blob_digests


def upload_blob(url: str, name: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = httpx.post(f"{url}/v2/{name}/blobs/uploads/?digest={digest}", content=data,
                   timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    return digest


def head_status(url: str, name: str, digest: str) -> int:
    return httpx.head(f"{url}/v2/{name}/blobs/{digest}", timeout=TIMEOUT).status_code


def check_delete_everywhere(fleet: Fleet, name: str) -> str:
    """Delete a blob through instance 0 once every instance has cached it; all say 404 at once."""
    digest = upload_blob(fleet.nginx.url, name, os.urandom(4096))
    urls = [i.url for i in fleet.instances]
    assert [head_status(u, name, digest) for u in urls] == [200] * len(urls)
    r = httpx.delete(f"{urls[0]}/v2/{name}/blobs/{digest}", timeout=TIMEOUT)
    assert r.status_code == 202, r.text
    assert [head_status(u, name, digest) for u in urls] == [404] * len(urls)
    return digest


def kill_mid_push(fleet: Fleet, layout: ImageLayout, ref: str, policy: Path) -> int:
    """Push with retries; kill whichever instance is receiving the big layer. Its index.

    skopeo 1.9's ``--retry-times`` retries a reset connection but not every way a write to a
    closed one fails; when it gives up, the push is run once more, as a CI job's retry would.
    Either way the retry goes through nginx to the instances still alive.
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            push(layout, fleet.nginx.host, ref, policy, retries=3)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    pusher = threading.Thread(target=run)
    pusher.start()
    killed = -1
    seen = [0] * len(fleet.instances)
    while pusher.is_alive() and killed < 0:
        for n, instance in enumerate(fleet.instances):
            seen[n] = seen[n] + 1 if established(instance.port) else 0
            if seen[n] >= 3:  # a connection held for three polls: the layer's body
                os.killpg(instance.proc.pid, signal.SIGKILL)
                killed = n
                break
        time.sleep(0.02)
    pusher.join(600)
    assert killed >= 0, "the push finished before an instance could be killed"
    if errors:
        push(layout, fleet.nginx.host, ref, policy, retries=3)
    return killed


def podman_round_trip(host: str, tmp_path: Path, policy: Path) -> None:
    """podman pulls the image through nginx and pushes it to another repository."""
    assert shutil.which("podman"), "podman is required (apt-get install podman)"
    store = tmp_path / "podman"
    store.mkdir()
    run = Path(tempfile.mkdtemp(prefix="lsf-"))  # podman wants a --runroot under 50 characters
    try:
        pull = podman(store, run, "pull", "--tls-verify=false", f"{host}/fleet/small:v1")
        assert pull.returncode == 0, pull.stderr
        push = podman(store, run, "push", "--tls-verify=false", f"{host}/fleet/small:v1",
                      f"docker://{host}/fleet/podman:v1")
        assert push.returncode == 0, push.stderr
    finally:
        shutil.rmtree(run, ignore_errors=True)
    inspect = skopeo("inspect", "--tls-verify=false", f"docker://{host}/fleet/podman:v1",
                     policy=policy)
    assert inspect.returncode == 0, inspect.stderr


@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend_id", ["filesystem", "s3"])
def test_fleet_behind_nginx(backend_id: str, request: pytest.FixtureRequest,
                            tmp_path: Path) -> None:
    backend: Backend = request.getfixturevalue(backend_fixture_name(backend_id))
    policy = write_policy(tmp_path / "policy.json")
    small = build_oci_layout(tmp_path / "small", [64 * 1024, 300 * 1024], seed=1)
    other = build_oci_layout(tmp_path / "other", [128 * 1024], seed=2)
    big = build_oci_layout(tmp_path / "big", [160 * MiB], seed=3)
    rds = RedisServer(tmp_path).start()
    try:
        with Fleet(tmp_path, backend.driver, backend.params, redis_addr=rds.addr) as fleet:
            host = fleet.nginx.host
            push(small, host, "fleet/small:v1", policy)
            pull_and_check(small, host, "fleet/small:v1", tmp_path / "pull1", policy)
            assert rds.client.dbsize() > 0  # the cache is in use
            podman_round_trip(host, tmp_path, policy)
            gone = check_delete_everywhere(fleet, "fleet/small")

            rds.client.flushall()
            pull_and_check(small, host, "fleet/small:v1", tmp_path / "pull2", policy)
            assert all(head_status(i.url, "fleet/small", gone) == 404 for i in fleet.instances)

            rds.stop()
            push(other, host, "fleet/other:v1", policy)
            pull_and_check(other, host, "fleet/other:v1", tmp_path / "pull3", policy)
            pull_and_check(small, host, "fleet/small:v1", tmp_path / "pull4", policy)
            gone_while_down = check_delete_everywhere(fleet, "fleet/other")
            rds.start()
            assert all(head_status(i.url, "fleet/other", gone_while_down) == 404
                       for i in fleet.instances)

            killed = kill_mid_push(fleet, big, "fleet/big:v1", policy)
            pull_and_check(big, host, "fleet/big:v1", tmp_path / "pull5", policy)
            for n, instance in enumerate(fleet.instances):
                if n != killed:
                    assert head_status(instance.url, "fleet/big", big.blob_digests[1]) == 200
    finally:
        rds.stop()


def test_workers_serve_push_and_pull(backend_filesystem: Backend, tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "policy.json")
    layout = build_oci_layout(tmp_path / "image", [200 * 1024, 64 * 1024], seed=4)
    port = free_port()
    cfg = write_config(tmp_path / "config.yml", backend_filesystem.driver,
                       backend_filesystem.params, port)
    exe = shutil.which("layerstore")
    argv = [exe] if exe else ["python3", "-m", "layerstore_core.cli"]
    argv += ["serve", "--config", str(cfg), "--workers", "2"]
    with RegistryProcess(argv, port, tmp_path / "workers.log") as workers:
        host = f"127.0.0.1:{port}"
        push(layout, host, "workers/img:v1", policy)
        pull_and_check(layout, host, "workers/img:v1", tmp_path / "pull", policy)
        before = _worker_pids(workers.proc.pid)
        assert len(before) == 2
        os.kill(workers.proc.pid, signal.SIGHUP)  # graceful reload: new workers, same socket
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            after = _worker_pids(workers.proc.pid)
            if len(after) == 2 and not set(after) & set(before):
                break
            time.sleep(0.2)
        assert len(after) == 2 and not set(after) & set(before), (before, after)
        pull_and_check(layout, host, "workers/img:v1", tmp_path / "pull2", policy)


def _worker_pids(parent: int) -> list[int]:
    """The uvicorn workers (multiprocessing spawn children) of ``parent``."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(c) for c in children
            if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
