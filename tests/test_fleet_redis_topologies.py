"""The blob-descriptor cache and the fleet lease on a real Redis Sentinel and a real Redis Cluster.

A ``layerstore serve`` configured with Distribution 3's ``redis.addrs`` (+ ``mastername`` for
Sentinel) pushes and pulls while the cache is in use, through a Sentinel failover, with the
master stopped, with a Cluster node and then the whole Cluster stopped, and when started before
the Cluster exists; every answer is checked against what was pushed. The leases are taken
through the same client the server builds (``redisconn.connect``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.registry.leases import (
    FallbackLease,
    LeaseBusyError,
    RedisLease,
    StorageLease,
    fleet_lease,
)
from layerstore_core.registry.rediscache import Client, RedisDescriptorCache, blob_key
from layerstore_core.registry.redisconn import RedisSettings, connect
from tests.backends._servers import free_port
from tests.images import RegistryProcess, write_config
from tests.redistopo import MASTER_NAME, ClusterSet, SentinelSet

TIMEOUT = 60
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _addrs(addrs: list[str]) -> tuple[tuple[str, int], ...]:
    return tuple((a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in addrs)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[dict[str, object]], RegistryProcess]]:
    """Start a filesystem ``layerstore serve`` with this ``redis`` section and the Redis cache."""
    started: list[RegistryProcess] = []

    def start(redis_section: dict[str, object]) -> RegistryProcess:
        port = free_port()
        section = {"dialtimeout": "200ms", "readtimeout": "500ms", "writetimeout": "500ms",
                   **redis_section}
        cfg = write_config(tmp_path / "config.yml", "filesystem",
                           {"rootdirectory": str(tmp_path / "root")}, port,
                           {"storage": {"cache": {"blobdescriptor": "redis"}},
                            "redis": section})
        server = RegistryProcess.layerstore(cfg, port, tmp_path / "serve.log")
        started.append(server)
        return server.wait_ready(60)

    yield start
    for server in started:
        server.stop()


def push_image(url: str, name: str) -> tuple[str, list[tuple[str, bytes]]]:
    """Push a config and a layer and their manifest; the manifest digest and the blobs."""
    blobs = []
    for data in (json.dumps({"architecture": "amd64", "os": "linux"}).encode(),
                 os.urandom(20_000)):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = httpx.post(f"{url}/v2/{name}/blobs/uploads/?digest={digest}", content=data,
                       timeout=TIMEOUT)
        assert r.status_code == 201, r.text
        blobs.append((digest, data))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": blobs[0][0], "size": len(blobs[0][1])},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": blobs[1][0], "size": len(blobs[1][1])}]}).encode()
    r = httpx.put(f"{url}/v2/{name}/manifests/v1", content=manifest,
                  headers={"Content-Type": OCI_MANIFEST}, timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    return "sha256:" + hashlib.sha256(manifest).hexdigest(), blobs


def pull_and_check(url: str, name: str, manifest_digest: str,
                   blobs: list[tuple[str, bytes]]) -> None:
    r = httpx.get(f"{url}/v2/{name}/manifests/v1", headers={"Accept": OCI_MANIFEST},
                  timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert "sha256:" + hashlib.sha256(r.content).hexdigest() == manifest_digest
    for digest, data in blobs:
        head = httpx.head(f"{url}/v2/{name}/blobs/{digest}", timeout=TIMEOUT)
        assert head.status_code == 200
        assert int(head.headers["content-length"]) == len(data)
        got = httpx.get(f"{url}/v2/{name}/blobs/{digest}", timeout=TIMEOUT,
                        follow_redirects=True)
        assert got.status_code == 200 and got.content == data


def round_trip(url: str, name: str) -> list[tuple[str, bytes]]:
    manifest, blobs = push_image(url, name)
    pull_and_check(url, name, manifest, blobs)
    return blobs


def eventually_cached(server: RegistryProcess, client: Client, name: str,
                      blobs: list[tuple[str, bytes]]) -> None:
    """HEAD the blobs until Redis holds them (a failing Redis is skipped for a few seconds)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for digest, _ in blobs:
            assert httpx.head(f"{server.url}/v2/{name}/blobs/{digest}",
                              timeout=TIMEOUT).status_code == 200
        try:
            if all(client.exists(blob_key(digest)) for digest, _ in blobs):
                return
        except Exception:  # noqa: BLE001 - a cluster or master still settling: poll again
            pass
        time.sleep(0.5)
    raise AssertionError(f"the blobs of {name} never reached Redis: {server.log.read_text()}")


def check_exclusive_lease(client: Client) -> None:
    first, second = RedisLease(client, "uploadpurge", 30), RedisLease(client, "uploadpurge", 30)
    first.acquire()
    with pytest.raises(LeaseBusyError):
        second.acquire()
    first.renew()
    first.release()
    second.acquire()
    second.release()


def check_lease_falls_back(client: Client) -> None:
    """With Redis unreachable the fleet lease is the storage's, and still excludes."""
    driver = InMemoryDriver()
    lease = fleet_lease(driver, client, "uploadpurge")
    assert isinstance(lease, FallbackLease)
    lease.acquire()
    with pytest.raises(LeaseBusyError):
        StorageLease(driver, "uploadpurge", settle=0).acquire()
    lease.release()


@pytest.mark.timeout(300)
def test_sentinel_cache_and_lease_survive_failover_and_a_stopped_master(
        tmp_path: Path, serve: Callable[[dict[str, object]], RegistryProcess]) -> None:
    sentinels = SentinelSet(tmp_path / "sentinel").start()
    try:
        server = serve({"addrs": [sentinels.sentinel.addr], "mastername": MASTER_NAME})
        client = connect(RedisSettings(addrs=_addrs([sentinels.sentinel.addr]),
                                       mastername=MASTER_NAME))
        blobs = round_trip(server.url, "sentinel/a")
        eventually_cached(server, client, "sentinel/a", blobs)
        assert sentinels.current_master().client.exists(blob_key(blobs[1][0]))
        check_exclusive_lease(client)

        sentinels.failover()
        pull_and_check(server.url, "sentinel/a", *_manifest_of(server.url, "sentinel/a", blobs))
        round_trip(server.url, "sentinel/b")
        after = round_trip(server.url, "sentinel/c")
        eventually_cached(server, client, "sentinel/c", after)  # on the promoted replica
        assert sentinels.current_master().client.exists(blob_key(after[1][0]))
        check_exclusive_lease(client)

        sentinels.current_master().stop()
        round_trip(server.url, "sentinel/d")
        pull_and_check(server.url, "sentinel/c", *_manifest_of(server.url, "sentinel/c", after))
        check_lease_falls_back(client)
    finally:
        sentinels.stop()


@pytest.mark.timeout(300)
def test_cluster_cache_and_lease_from_before_start_to_a_stopped_cluster(
        tmp_path: Path, serve: Callable[[dict[str, object]], RegistryProcess]) -> None:
    cluster = ClusterSet(tmp_path / "cluster")
    server = serve({"addrs": cluster.addrs})  # the cluster does not exist yet
    early = round_trip(server.url, "cluster/early")
    cluster.start()
    try:
        client = connect(RedisSettings(addrs=_addrs(cluster.addrs)))
        eventually_cached(server, client, "cluster/early", early)
        blobs = round_trip(server.url, "cluster/a")
        eventually_cached(server, client, "cluster/a", blobs)
        check_exclusive_lease(client)

        digest = blobs[1][0]
        r = httpx.delete(f"{server.url}/v2/cluster/a/blobs/{digest}", timeout=TIMEOUT)
        assert r.status_code == 202, r.text
        assert httpx.head(f"{server.url}/v2/cluster/a/blobs/{digest}",
                          timeout=TIMEOUT).status_code == 404
        # gc's invalidation: several keys in several slots at once
        RedisDescriptorCache(client).forget_blobs([d for d, _ in early])
        assert not any(client.exists(blob_key(d)) for d, _ in early)

        cluster.nodes[1].stop()
        round_trip(server.url, "cluster/b")
        pull_and_check(server.url, "cluster/early",
                       *_manifest_of(server.url, "cluster/early", early))
        cluster.stop()
        round_trip(server.url, "cluster/c")
        check_lease_falls_back(client)
    finally:
        cluster.stop()


def _manifest_of(url: str, name: str, blobs: list[tuple[str, bytes]]
                 ) -> tuple[str, list[tuple[str, bytes]]]:
    """The digest of ``name:v1`` as stored (to pull it again) and its blobs."""
    r = httpx.head(f"{url}/v2/{name}/manifests/v1", headers={"Accept": OCI_MANIFEST},
                   timeout=TIMEOUT)
    assert r.status_code == 200
    return r.headers["docker-content-digest"], blobs
