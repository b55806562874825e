"""The blob-descriptor caches, the fleet leases and their config, against a real redis-server."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from layerstore_core import load_driver
from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.registry import (
    BlobUnknownError,
    ManifestBlobUnknownError,
    Registry,
    rediscache,
)
from layerstore_core.registry import paths as p
from layerstore_core.registry import purge as purge_module
from layerstore_core.registry.cache import FALLBACKS, InMemoryDescriptorCache
from layerstore_core.registry.fence import SweepMarker
from layerstore_core.registry.leases import (
    FallbackLease,
    Lease,
    LeaseBusyError,
    LeaseLostError,
    RedisLease,
    StorageLease,
    fleet_lease,
    lease_path,
)
from layerstore_core.registry.rediscache import RedisDescriptorCache
from layerstore_core.registry.redisconn import RedisSettings, connect
from layerstore_core.server.config import ConfigError, parse_config
from layerstore_core.server.threaded import ThreadedServer
from layerstore_core.testing import Backend
from tests.backends._servers import free_port
from tests.backends.s3 import s3_params
from tests.fleet import RedisServer
from tests.s3proxy import S3Proxy
from tests.test_http_api import OCI_MANIFEST, make_config


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def client(redis_server: RedisServer) -> redis.Redis:
    if redis_server.proc is None:
        redis_server.start()
    redis_server.client.flushall()
    return connect(RedisSettings(addrs=(("127.0.0.1", redis_server.port),)))  # type: ignore[return-value]


def push_blob(registry: Registry, name: str, data: bytes) -> str:
    upload = registry.repository(name).blobs.create_upload()
    upload.write(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    upload.commit(digest)
    return digest


def unlink_behind_the_cache(driver: InMemoryDriver, name: str, digest: str) -> None:
    driver.delete(p.path_for(p.LayerLinkPath(name, digest)))


def test_redis_cache_answers_then_forgets_on_delete(client: redis.Redis) -> None:
    driver = InMemoryDriver()
    registry = Registry(driver, RedisDescriptorCache(client))
    digest = push_blob(registry, "a/b", b"hello")
    blobs = registry.repository("a/b").blobs
    assert blobs.stat(digest).size == 5
    assert client.exists(f"blobs::{digest}", f"repository::a/b::{digest}") == 2
    assert client.sismember("repository::a/b::blobs", digest)
    unlink_behind_the_cache(driver, "a/b", digest)
    assert blobs.stat(digest).size == 5  # served by Redis: proof the cache is used
    # another repository never sees it through the cache
    with pytest.raises(BlobUnknownError):
        registry.repository("other").blobs.stat(digest)
    driver.put_content(p.path_for(p.LayerLinkPath("a/b", digest)), digest.encode())
    blobs.delete(digest)
    with pytest.raises(BlobUnknownError):
        blobs.stat(digest)


def test_flushed_redis_falls_back_to_storage(client: redis.Redis) -> None:
    registry = Registry(InMemoryDriver(), RedisDescriptorCache(client))
    digest = push_blob(registry, "r", b"data")
    registry.repository("r").blobs.stat(digest)
    client.flushall()
    assert registry.repository("r").blobs.stat(digest).size == 4
    registry.blobs_removed([digest])
    assert not client.exists(f"blobs::{digest}")


def test_unreachable_redis_costs_speed_not_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = connect(RedisSettings(addrs=(("127.0.0.1", free_port()),), dialtimeout=0.2))
    registry = Registry(InMemoryDriver(), RedisDescriptorCache(dead))
    before = FALLBACKS.count
    digest = push_blob(registry, "r", b"data")
    blobs = registry.repository("r").blobs
    assert blobs.stat(digest).size == 4
    with blobs.open(digest) as f:
        assert f.read() == b"data"
    blobs.delete(digest)
    with pytest.raises(BlobUnknownError):
        blobs.stat(digest)
    assert FALLBACKS.count > before


def test_failed_invalidation_is_replayed_before_the_next_read(
    redis_server: RedisServer, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rediscache, "RETRY_AFTER_S", 0.0)
    driver = InMemoryDriver()
    cache = RedisDescriptorCache(client)
    registry = Registry(driver, cache)
    digest = push_blob(registry, "r", b"data")
    registry.repository("r").blobs.stat(digest)
    redis_server.stop()
    registry.repository("r").blobs.delete(digest)  # cannot reach Redis
    redis_server.start()
    # a Redis that kept the entry (persistence, a replica): simulate it
    redis_server.client.hset(f"blobs::{digest}", mapping={"digest": digest, "size": 4})
    redis_server.client.hset(f"repository::r::{digest}", mapping={"digest": digest})
    with pytest.raises(BlobUnknownError):
        registry.repository("r").blobs.stat(digest)
    assert not redis_server.client.exists(f"repository::r::{digest}")


def test_inmemory_cache_never_caches_membership() -> None:
    driver = InMemoryDriver()
    registry = Registry(driver, InMemoryDescriptorCache())
    digest = push_blob(registry, "r", b"data")
    assert registry.repository("r").blobs.stat(digest).size == 4
    unlink_behind_the_cache(driver, "r", digest)  # as another instance would
    with pytest.raises(BlobUnknownError):
        registry.repository("r").blobs.stat(digest)


def image_manifest(config: str, layer: str) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer, "size": 5}],
    }).encode()


@pytest.mark.parametrize(("cache", "pushed_here"),
                         [(None, False), (None, True), ("inmemory", True)])
def test_a_cache_saves_the_data_head_never_the_link_read(
    moto_endpoint: str, cache: str | None, pushed_here: bool
) -> None:
    """Counted at S3: the commit remembers what it verified, so the manifest PUT's reference
    checks, HEAD and GET need no HEAD of the blob data; each still reads the link. Without a
    cache only the process that placed the data knows it (``RecentWritesCache``): another
    instance of the fleet looks."""
    seen: list[tuple[str, str]] = []
    with S3Proxy(moto_endpoint) as proxy:
        params = s3_params(proxy.url)
        driver = load_driver("s3", **params)
        config = make_config(Backend("s3", "s3", params), blobdescriptor_cache=cache)
        with ThreadedServer(config, driver) as pusher, ThreadedServer(config, driver) as other, \
                httpx.Client(base_url=pusher.url, timeout=60) as c:
            digests = []
            for data in (b"{}", b"layer"):
                digest = "sha256:" + hashlib.sha256(data).hexdigest()
                r = c.post("/v2/cached/blobs/uploads/", params={"digest": digest}, content=data)
                assert r.status_code == 201, r.text
                digests.append(digest)
            if not pushed_here:
                c.base_url = httpx.URL(other.url)
            proxy.tracer = lambda op, request: seen.append((op, request))
            r = c.put("/v2/cached/manifests/v1", content=image_manifest(*digests),
                      headers={"Content-Type": OCI_MANIFEST})
            assert r.status_code == 201, r.text
            assert c.head(f"/v2/cached/blobs/{digests[1]}").headers["content-length"] == "5"
            assert c.get(f"/v2/cached/blobs/{digests[1]}").content == b"layer"
            proxy.tracer = None
        driver.close()
    data_heads = [r for op, r in seen if op == "HeadObject" and "/blobs/" in r]
    link_reads = [r for op, r in seen if op == "GetObject" and "/_layers/" in r]
    assert len(data_heads) == (0 if pushed_here else 4), data_heads
    assert len(link_reads) == 4, link_reads  # membership: always the storage's answer


def test_inmemory_cache_never_accepts_a_manifest_for_an_unlinked_blob() -> None:
    driver = InMemoryDriver()
    registry = Registry(driver, InMemoryDescriptorCache())
    config, layer = push_blob(registry, "r", b"{}"), push_blob(registry, "r", b"layer")
    unlink_behind_the_cache(driver, "r", layer)  # as another instance would
    with pytest.raises(ManifestBlobUnknownError):
        registry.repository("r").manifests.put(image_manifest(config, layer), OCI_MANIFEST)


def test_manifest_recheck_after_a_sweep_asks_the_storage_not_the_cache() -> None:
    """A sweep deletes data before links: a cache that still knows the size must not vouch."""
    driver = InMemoryDriver()
    registry = Registry(driver, InMemoryDescriptorCache())
    config, layer = push_blob(registry, "r", b"{}"), push_blob(registry, "r", b"layer")
    marker = SweepMarker("run", dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))
    driver.put_content(p.path_for(p.GCSweepPath()), marker.encode())
    driver.delete(p.path_for(p.BlobDataPath(layer)))  # the sweep's delete; the link is still there
    with pytest.raises(ManifestBlobUnknownError):
        registry.repository("r").manifests.put(image_manifest(config, layer), OCI_MANIFEST, "v1")
    assert not registry.repository("r").manifests.exists("v1")


def test_redis_lease_is_exclusive(client: redis.Redis) -> None:
    first, second = RedisLease(client, "job", ttl=30), RedisLease(client, "job", ttl=30)
    first.acquire()
    with pytest.raises(LeaseBusyError):
        second.acquire()
    first.renew()
    with pytest.raises(LeaseLostError):
        second.renew()
    second.release()  # not its lease: nothing happens
    with pytest.raises(LeaseBusyError):
        second.acquire()
    first.release()
    second.acquire()


def test_lease_falls_back_to_storage_without_redis() -> None:
    driver = InMemoryDriver()
    dead = connect(RedisSettings(addrs=(("127.0.0.1", free_port()),), dialtimeout=0.2))
    lease = fleet_lease(driver, dead, "uploadpurge")
    assert isinstance(lease, FallbackLease)
    lease.acquire()
    with pytest.raises(LeaseBusyError):
        StorageLease(driver, "uploadpurge", settle=0).acquire()
    lease.release()
    StorageLease(driver, "uploadpurge", settle=0).acquire()


def test_config_redis_section() -> None:
    config = parse_config({
        "storage": {"inmemory": {}, "cache": {"blobdescriptor": "redis"}},
        "redis": {"addr": "cache:6380", "password": "pw", "db": 2, "dialtimeout": "10ms",
                  "readtimeout": "20ms", "writetimeout": "30ms", "tls": {"enabled": True},
                  "pool": {"maxidle": 4, "maxactive": 16, "idletimeout": "300s"}},
        "http": {"workers": 3},
    })
    assert config.blobdescriptor_cache == "redis" and config.workers == 3
    assert config.redis == RedisSettings(
        addrs=(("cache", 6380),), password="pw", db=2, dialtimeout=0.01, readtimeout=0.02,
        writetimeout=0.03, maxidle=4, maxactive=16, idletimeout=300.0, tls=True)
    sentinel = parse_config({"redis": {"addrs": ["s1:26379", "s2:26379"], "mastername": "m"}})
    assert sentinel.redis is not None and sentinel.redis.mastername == "m"
    assert len(sentinel.redis.addrs) == 2


@pytest.mark.parametrize(("doc", "key"), [
    ({"storage": {"cache": {"blobdescriptor": "redis"}}}, "redis section"),
    ({"storage": {"cache": {"blobdescriptor": "memcached"}}}, "storage.cache.blobdescriptor"),
    ({"redis": {"addr": "nohostport"}}, "redis.addr"),
    ({"redis": {"db": "x"}}, "redis.db"),
    ({"redis": {"pool": {"bogus": 1}}}, "redis.pool.bogus"),
    ({"http": {"workers": 0}}, "http.workers"),
])
def test_config_errors_name_the_key(doc: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        parse_config(doc)



def test_run_leased_skips_while_another_instance_holds_the_lease(client: redis.Redis) -> None:
    from layerstore_core.server.fleet import run_leased

    driver = InMemoryDriver()
    holder = RedisLease(client, "uploadpurge", ttl=30)
    holder.acquire()
    assert run_leased(driver, client, "uploadpurge", lambda _lease: "ran") is None
    holder.release()
    assert run_leased(driver, client, "uploadpurge", lambda _lease: "ran") == "ran"
    assert not client.exists("layerstore::lease::uploadpurge")  # released after the job


def test_cli_gc_takes_the_fleet_lease_and_invalidates_redis(
        client: redis.Redis, redis_server: RedisServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``layerstore gc`` with a ``redis`` section: the servers' lease, and their cache forgets."""
    from layerstore_core import load_driver
    from layerstore_core.cli import main

    root = f"{tmp_path}/root"
    config = f"{tmp_path}/c.yml"
    with open(config, "w") as f:
        f.write(f"storage:\n  filesystem:\n    rootdirectory: {root}\n"
                f"  cache:\n    blobdescriptor: redis\n"
                f"redis:\n  addrs: [127.0.0.1:{redis_server.port}]\n")
    registry = Registry(load_driver("filesystem", rootdirectory=root), RedisDescriptorCache(client))
    orphan = push_blob(registry, "r", b"collect me")
    registry.repository("r").blobs.stat(orphan)
    assert client.exists(f"blobs::{orphan}")
    holder = RedisLease(client, "gc", ttl=30)
    holder.acquire()
    assert main(["gc", "--config", config, "--grace", "0s"]) == 1
    assert "layerstore::lease::gc" in capsys.readouterr().err
    holder.release()
    assert main(["gc", "--config", config, "--grace", "0s", "--json"]) == 0
    assert orphan in capsys.readouterr().out
    assert not client.exists(f"blobs::{orphan}")


def test_cli_purge_uploads_takes_the_redis_lease(
        client: redis.Redis, redis_server: RedisServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``layerstore purge-uploads`` with a ``redis`` section: the servers' purger lease."""
    from layerstore_core import load_driver
    from layerstore_core.cli import main

    root = f"{tmp_path}/root"
    config = f"{tmp_path}/c.yml"
    with open(config, "w") as f:
        f.write(f"storage:\n  filesystem:\n    rootdirectory: {root}\n"
                f"redis:\n  addrs: [127.0.0.1:{redis_server.port}]\n")
    upload = Registry(load_driver("filesystem", rootdirectory=root)).repository(
        "r").blobs.create_upload()
    upload.write(b"abandoned")
    upload.close()
    holder = RedisLease(client, "uploadpurge", ttl=30)
    holder.acquire()
    assert main(["purge-uploads", "--config", config, "--age", "0s"]) == 1
    err = capsys.readouterr().err
    assert "another purger is running" in err and "layerstore::lease::uploadpurge" in err, err
    holder.release()
    assert main(["purge-uploads", "--config", config, "--age", "0s"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "purged 1 upload(s)"
    assert not client.exists("layerstore::lease::uploadpurge")


def test_strict_lease_holds_the_storage_lease_beside_redis(client: redis.Redis) -> None:
    """gc's lease: an instance cut off from Redis cannot collect beside a Redis holder."""
    driver = InMemoryDriver()
    holder = fleet_lease(driver, client, "gc", strict=True)
    holder.acquire()
    assert client.exists("layerstore::lease::gc")
    dead = connect(RedisSettings(addrs=(("127.0.0.1", free_port()),), dialtimeout=0.2))
    cut_off = fleet_lease(driver, dead, "gc", strict=True)
    with pytest.raises(LeaseBusyError, match="holds the gc lease"):  # the storage lease
        cut_off.acquire()
    holder.renew()
    holder.release()
    assert not client.exists("layerstore::lease::gc")
    cut_off.acquire()  # Redis down: the storage lease alone
    with pytest.raises(LeaseBusyError):
        fleet_lease(driver, client, "gc", strict=True).acquire()  # Redis free, storage held
    assert not client.exists("layerstore::lease::gc")  # the Redis lease it took is dropped
    cut_off.release()


def _stale_uploads(registry: Registry, count: int) -> None:
    for i in range(count):
        upload = registry.repository(f"purge/r{i % 3}").blobs.create_upload()
        upload.write(b"partial")
        upload.close()


def _slow_aborts(monkeypatch: pytest.MonkeyPatch, seconds: float,
                 each: Callable[[int], None]) -> list[int]:
    """Make every abort of the purge take ``seconds`` and call ``each(n)`` first."""
    real = purge_module.abort_upload
    calls: list[int] = []

    def abort(driver: InMemoryDriver, name: str, upload_id: str) -> None:
        calls.append(len(calls))
        each(len(calls))
        time.sleep(seconds)
        real(driver, name, upload_id)

    monkeypatch.setattr(purge_module, "abort_upload", abort)
    return calls


def _purge_lease(kind: str, driver: InMemoryDriver, client: redis.Redis, ttl: float) -> Lease:
    if kind == "redis":
        return RedisLease(client, "uploadpurge", ttl=ttl)
    return StorageLease(driver, "uploadpurge", ttl=ttl, settle=0)


FUTURE = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)


@pytest.mark.parametrize("kind", ["redis", "storage"])
def test_purge_renews_its_lease_while_it_runs(
        kind: str, client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """A purge three times as long as the lease's ttl keeps it: no rival gets in meanwhile."""
    driver = InMemoryDriver()
    registry = Registry(driver)
    _stale_uploads(registry, 10)
    lease = _purge_lease(kind, driver, client, ttl=1.0)
    lease.acquire()
    rivals_in: list[int] = []

    def rival(n: int) -> None:
        try:
            _purge_lease(kind, driver, client, ttl=1.0).acquire()
            rivals_in.append(n)
        except LeaseBusyError:
            pass

    calls = _slow_aborts(monkeypatch, 0.3, rival)
    purged = purge_module.purge_uploads(registry, dt.timedelta(0), now=FUTURE, lease=lease)
    assert len(purged) == len(calls) == 10
    assert rivals_in == []
    lease.renew()  # still ours after 3 s with a 1 s ttl
    lease.release()


@pytest.mark.parametrize("kind", ["redis", "storage"])
def test_purge_stops_when_its_lease_is_lost(
        kind: str, client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another holder takes the lease mid-purge: the next renewal fails and the purge stops."""
    driver = InMemoryDriver()
    registry = Registry(driver)
    _stale_uploads(registry, 20)
    lease = _purge_lease(kind, driver, client, ttl=0.9)
    lease.acquire()

    def steal(n: int) -> None:
        if n == 3:
            if kind == "redis":
                client.set("layerstore::lease::uploadpurge", "rival")
            else:
                driver.delete(lease_path("uploadpurge"))
                StorageLease(driver, "uploadpurge", ttl=60, settle=0).acquire()

    calls = _slow_aborts(monkeypatch, 0.1, steal)
    with pytest.raises(LeaseLostError):
        purge_module.purge_uploads(registry, dt.timedelta(0), now=FUTURE, lease=lease)
    assert 3 <= len(calls) < 20
    left = sum(len(driver.list(p.path_for(p.UploadsPath(f"purge/r{i}")))) for i in range(3))
    assert left == 20 - len(calls)


def test_run_leased_stops_quietly_when_the_job_loses_its_lease(client: redis.Redis) -> None:
    from layerstore_core.server.fleet import run_leased

    def job(lease: Lease) -> str:
        client.delete("layerstore::lease::uploadpurge")
        lease.renew()
        return "finished"

    assert run_leased(InMemoryDriver(), client, "uploadpurge", job) is None
