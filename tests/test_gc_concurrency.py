"""gc in a loop while skopeo pushes in a loop through two server processes on one store.

The store starts with old garbage (pushed, then its manifests deleted, then aged past the grace
period); half of the pushes reuse that garbage, so they race the sweep for the same blobs (a
blob HEAD that finds it, a commit that finds it stored, a manifest PUT that needs it). A second
collector runs without grace, so only the writers' fence stands between its sweeps and the
pushes. Bounded in time and count. Afterwards every push that skopeo reported done pulls
completely, also after a last collection, and the old garbage that no finished push uses is
gone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from pathlib import Path

import httpx

from layerstore_core import load_driver
from layerstore_core.gc import GCBusyError
from layerstore_core.registry import Registry
from tests.backends._servers import free_port
from tests.gc_store import age_tree, blobs_in
from tests.images import (
    ImageLayout,
    RegistryProcess,
    build_oci_layout,
    read_oci_layout,
    skopeo,
    write_config,
    write_policy,
)

RUN_SECONDS = 25.0
MAX_PUSHES = 20  # per pusher
GRACE = dt.timedelta(seconds=60)
SIZES = (2000, 6000)


@dataclasses.dataclass(frozen=True)
class Done:
    """A push skopeo reported as finished (its manifest PUT got 201)."""

    host: str
    repo: str
    tag: str
    image: ImageLayout


def _push(host: str, image: ImageLayout, repo: str, tag: str, policy: Path) -> bool:
    out = skopeo("copy", "--dest-tls-verify=false", "--retry-times", "0",
                 f"oci:{image.path}:{image.tag}", f"docker://{host}/{repo}:{tag}",
                 policy=policy, timeout=120)
    return out.returncode == 0


def _pusher(n: int, host: str, reused: list[ImageLayout], tmp: Path, policy: Path,
            deadline: float, done: list[Done]) -> None:
    for i in range(MAX_PUSHES):
        if time.monotonic() > deadline:
            return
        if i % 2:
            image = reused[(n + i // 2) % len(reused)]
            repo = "seed/x" if i % 4 == 1 else f"p/{n}"
        else:
            image = build_oci_layout(tmp / f"new-{n}-{i}", SIZES, tag="t", seed=1000 + n * 100 + i)
            repo = f"p/{n}"
        tag = f"n{n}-i{i}"
        if not _push(host, image, repo, tag, policy):
            continue
        done.append(Done(host, repo, tag, image))
        if i % 4 == 3:  # and make it garbage again, for the next push of it to race the sweep
            url = f"http://{host}/v2/{repo}/manifests/{image.manifest_digest}"
            if httpx.delete(url).status_code == 202:
                done[:] = [d for d in done if (d.repo, d.image) != (repo, image)]


def _collector(root: Path, grace: dt.timedelta, stop: threading.Event, runs: list[int]) -> None:
    registry = Registry(load_driver("filesystem", rootdirectory=str(root)))
    while not stop.is_set():
        try:
            report = registry.collect_garbage(grace=grace, delete_untagged=True)
            runs[0] += 1
            runs[2] += len(report.blobs_deleted)
            runs[3] += report.rescued
        except GCBusyError:
            runs[1] += 1
            time.sleep(0.2)


def test_gc_loop_while_two_servers_push(tmp_path: Path) -> None:
    root = tmp_path / "root"
    policy = write_policy(tmp_path / "policy.json")
    reused = [build_oci_layout(tmp_path / f"seed-{i}", SIZES, tag="t", seed=500 + i)
              for i in range(4)]
    ports = [free_port(), free_port()]
    configs = [write_config(tmp_path / f"c{i}.yml", "filesystem", {"rootdirectory": str(root)},
                            port) for i, port in enumerate(ports)]
    servers = [RegistryProcess.layerstore(c, port, tmp_path / f"s{i}.log")
               for i, (c, port) in enumerate(zip(configs, ports, strict=True))]
    try:
        for server in servers:
            server.wait_ready()
        hosts = [f"127.0.0.1:{port}" for port in ports]
        for i, image in enumerate(reused):  # garbage: pushed, manifest deleted, aged
            assert _push(hosts[0], image, "seed/x", f"s{i}", policy)
            r = httpx.delete(f"http://{hosts[0]}/v2/seed/x/manifests/{image.manifest_digest}")
            assert r.status_code == 202
        age_tree(root, 2 * 3600)
        registry = Registry(load_driver("filesystem", rootdirectory=str(root)))
        garbage = blobs_in(registry)

        stop, runs = threading.Event(), [0, 0, 0, 0]
        # two collectors contend for the lease; the one without grace leaves only the fence
        # between a push and the sweep (its pushes may fail, never leave a broken image)
        collectors = [threading.Thread(target=_collector, args=(root, grace, stop, runs))
                      for grace in (GRACE, dt.timedelta(0))]
        done: list[Done] = []
        deadline = time.monotonic() + RUN_SECONDS
        pushers = [threading.Thread(target=_pusher, args=(
            n, hosts[n], reused, tmp_path, policy, deadline, done)) for n in range(2)]
        for thread in collectors + pushers:
            thread.start()
        for thread in pushers:
            thread.join(300)
        stop.set()
        for thread in collectors:
            thread.join(300)
        assert runs[0] >= 2, f"gc ran {runs[0]} times"
        assert len(done) >= 4, f"only {len(done)} pushes finished"

        registry.collect_garbage(grace=dt.timedelta(0), delete_untagged=True)  # pushes done
        used = {d for item in done for d in (item.image.manifest_digest,
                                             *item.image.blob_digests)}
        left = (garbage - used) & blobs_in(registry)
        assert not left, f"{len(left)} old unreferenced blobs survived"
        for k, item in enumerate(done):
            out = tmp_path / f"pull-{k}"
            pulled = skopeo("copy", "--src-tls-verify=false",
                            f"docker://{hosts[k % 2]}/{item.repo}:{item.tag}", f"oci:{out}:t",
                            policy=policy)
            assert pulled.returncode == 0, f"{item}: {pulled.stderr}"
            assert read_oci_layout(out, "t") == (item.image.manifest_digest,
                                                 item.image.blob_digests)
    finally:
        for server in servers:
            server.stop()
