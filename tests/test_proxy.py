"""The pull-through cache end to end: Distribution 2.8.2 upstreams, skopeo pulls.

- A second pull hits only the cache (the upstream's access log shows no new blob GET).
- 8 concurrent pulls of an uncached 32 MiB layer through two processes sharing storage make
  exactly one upstream GET of it (in-process single-flight plus the lease in storage).
- Upstream stopped: cached images still pull (a stale serve, logged), uncached ones fail with
  UNAVAILABLE naming the upstream.
- A tag moved upstream: after the ttl the new digest is served (revalidated with a HEAD).
- Two upstreams by prefix, the second ``layerstore serve`` with token auth (the Bearer flow
  with configured credentials); podman pulls through the cache; pushes to an unclaimed
  namespace with ``allowpush``, refused in a pure mirror and in claimed namespaces.
- A blob whose upstream bytes do not match its digest is never stored.
- Expiry drops cached tags and manifests past the ttl, keeps pushed ones and every blob.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from layerstore_core import load_driver
from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.proxy.cache import lease_path
from layerstore_core.proxy.config import parse_proxy
from layerstore_core.proxy.expiry import expire_cache
from layerstore_core.registry import Registry
from layerstore_core.server.config import ConfigError, parse_config
from layerstore_core.server.threaded import ThreadedServer
from tests.backends._servers import free_port
from tests.images import (
    MiB,
    RegistryProcess,
    build_oci_layout,
    read_oci_layout,
    write_config,
    write_policy,
)
from tests.proxy_env import (
    PASSWORD,
    USER,
    access_log,
    blob_gets,
    pull,
    push,
    start_distribution,
    start_proxy,
)
from tests.test_clients_tokenauth import USERS as TOKEN_USERS
from tests.test_clients_tokenauth import _podman as podman
from tests.tokenserver import PKI, TokenServer

pytestmark = pytest.mark.timeout(600)
TTL = 3.0


class World:
    """One upstream with images, a pure-mirror proxy pair on one root, a prefix proxy."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.policy = write_policy(work / "policy.json")
        self.small = build_oci_layout(work / "small", [256 * 1024, 512 * 1024], seed=1)
        self.other = build_oci_layout(work / "other", [300 * 1024], seed=2)
        self.big = build_oci_layout(work / "big", [32 * MiB], seed=3)
        self.upstream_root = work / "upstream"
        self.processes: list[RegistryProcess] = []
        self.upstream = self.start(start_distribution(self.upstream_root, work, "upstream"))
        for image, ref in ((self.small, "lib/small:v1"), (self.other, "lib/other:v1"),
                           (self.big, "lib/big:v1")):
            push(image, self.upstream, ref, self.policy)
        mirror = {"remoteurl": self.upstream.url, "username": USER, "password": PASSWORD}
        self.mirror = self.start(start_proxy(work / "mirror", work, "mirror", mirror))
        self.mirror2 = self.start(start_proxy(work / "mirror", work, "mirror2", mirror))

    def start(self, proc: RegistryProcess) -> RegistryProcess:
        self.processes.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()

    def pulled(self, registry: RegistryProcess, ref: str, dest: str) -> str:
        """Pull ``ref`` and return its manifest digest (every blob hash checked)."""
        out = self.work / "pulls" / dest
        done = pull(registry, ref, out, self.policy)
        assert done.returncode == 0, done.stderr
        return read_oci_layout(out, "pulled")[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("proxy"))
    try:
        yield w
    finally:
        w.stop()


def test_second_pull_hits_only_the_cache(world: World) -> None:
    before = blob_gets(world.upstream)
    assert world.pulled(world.mirror, "lib/small:v1", "s1") == world.small.manifest_digest
    fetched = blob_gets(world.upstream) - before
    assert fetched == len(world.small.blob_digests)
    log_size = len(access_log(world.upstream))
    assert world.pulled(world.mirror, "lib/small:v1", "s2") == world.small.manifest_digest
    assert blob_gets(world.upstream) - before == fetched
    assert len(access_log(world.upstream)) == log_size  # ttl not reached: not even a HEAD


def test_concurrent_pulls_of_an_uncached_layer_make_one_upstream_get(world: World) -> None:
    layer = world.big.blob_digests[1]
    assert blob_gets(world.upstream, [layer]) == 0
    servers = [world.mirror, world.mirror2] * 4
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        digests = list(pool.map(lambda i: world.pulled(servers[i], "lib/big:v1", f"big{i}"),
                                range(8)))
    assert digests == [world.big.manifest_digest] * 8
    assert blob_gets(world.upstream, [layer]) == 1


def test_pushes_are_refused_by_a_pure_mirror(world: World) -> None:
    resp = httpx.post(f"{world.mirror.url}/v2/mine/blobs/uploads/")
    assert resp.status_code == 405
    assert resp.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_upstream_stopped_serves_cached_and_fails_uncached_clearly(world: World) -> None:
    # A second upstream process on the same data, which this test may stop.
    upstream = start_distribution(world.upstream_root, world.work, "doomed")
    proxy = start_proxy(world.work / "stale", world.work, "stale", {
        "remoteurl": upstream.url, "username": USER, "password": PASSWORD, "ttl": f"{TTL}s"})
    try:
        assert world.pulled(proxy, "lib/small:v1", "st1") == world.small.manifest_digest
        upstream.stop()
        time.sleep(TTL + 0.5)  # the tag is due for revalidation, which cannot happen
        assert world.pulled(proxy, "lib/small:v1", "st2") == world.small.manifest_digest
        assert "serving cached lib/small:v1" in proxy.log.read_text()
        done = pull(proxy, "lib/other:v1", world.work / "pulls" / "st3", world.policy)
        assert done.returncode != 0
        resp = httpx.get(f"{proxy.url}/v2/lib/other/manifests/v1")
        assert resp.status_code == 503
        error = resp.json()["errors"][0]
        assert error["code"] == "UNAVAILABLE" and upstream.url in error["message"]
    finally:
        proxy.stop()
        upstream.stop()


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PKI, TokenServer]]:
    pki = PKI.create(tmp_path_factory.mktemp("pki"))
    with TokenServer(pki.chain_signer, TOKEN_USERS).running() as server:
        yield pki, server


@pytest.fixture(scope="module")
def prefixed(world: World, tokens: tuple[PKI, TokenServer]
             ) -> Iterator[tuple[RegistryProcess, RegistryProcess]]:
    """A second upstream (``layerstore serve`` with token auth) and a proxy serving one/… and
    two/…, pushes elsewhere."""
    pki, server = tokens
    port = free_port()
    config = write_config(world.work / "second.yml", "filesystem",
                          {"rootdirectory": str(world.work / "upstream2")}, port,
                          extra={"auth": {"token": pki.auth_config(server.realm)}})
    second = world.start(RegistryProcess.layerstore(config, port, world.work / "second.log")
                         .wait_ready())
    push(world.other, second, "tools/other:v1", world.policy, creds="alice:alice-pw")
    proxy = world.start(start_proxy(world.work / "prefixed", world.work, "prefixed", {
        "allowpush": True,
        "upstreams": [
            {"prefix": "one", "remoteurl": world.upstream.url, "username": USER,
             "password": PASSWORD, "ttl": f"{TTL}s"},
            {"prefix": "two", "remoteurl": second.url, "username": "bob", "password": "bob-pw"},
        ]}))
    yield second, proxy


def _committed(path: Path, timeout: float = 60.0) -> bool:
    """Whether a fetched blob lands in storage: its commit may end after the client's last byte.

    The cache hands the client its last chunk once the digest matched, not after the commit's
    fsync and moves (DESIGN §10), so a pull can return just before the blob is in place.
    """
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_two_upstreams_by_prefix(world: World, tokens: tuple[PKI, TokenServer],
                                 prefixed: tuple[RegistryProcess, RegistryProcess]) -> None:
    _, proxy = prefixed
    config = world.other.blob_digests[0]
    head = httpx.head(f"{proxy.url}/v2/two/tools/other/blobs/{config}")  # asked, not fetched
    size = (world.other.path / "blobs/sha256" / config[7:]).stat().st_size
    assert head.status_code == 200 and head.headers["content-length"] == str(size)
    stored = world.work / "prefixed/docker/registry/v2/blobs/sha256" / config[7:9] / config[7:]
    assert not stored.exists()
    assert tokens[1].issued.get("bob", 0) >= 1  # the Bearer flow with the configured user
    assert world.pulled(proxy, "one/lib/small:v1", "p1") == world.small.manifest_digest
    assert world.pulled(proxy, "two/tools/other:v1", "p2") == world.other.manifest_digest
    assert _committed(stored / "data")
    resp = httpx.get(f"{proxy.url}/v2/two/lib/small/manifests/v1")
    assert resp.status_code == 404  # not on the second upstream


def test_podman_pulls_through_the_cache(world: World,
                                        prefixed: tuple[RegistryProcess, RegistryProcess]) -> None:
    assert shutil.which("podman"), "podman is required (apt-get install podman)"
    _, proxy = prefixed
    store = world.work / "podman"
    store.mkdir()
    run = Path(tempfile.mkdtemp(prefix="lsp-"))  # podman wants a --runroot under 50 characters
    try:
        done = podman(store, run, "pull", "--tls-verify=false",
                      f"{proxy.url.removeprefix('http://')}/two/tools/other:v1")
        assert done.returncode == 0, done.stderr
    finally:
        shutil.rmtree(run, ignore_errors=True)


def test_push_to_an_unclaimed_namespace_when_allowed(
        world: World, prefixed: tuple[RegistryProcess, RegistryProcess]) -> None:
    _, proxy = prefixed
    push(world.small, proxy, "local/mine:v1", world.policy, creds=None)
    assert world.pulled(proxy, "local/mine:v1", "mine") == world.small.manifest_digest
    resp = httpx.post(f"{proxy.url}/v2/one/lib/small/blobs/uploads/")
    assert resp.status_code == 405


def test_moved_tag_is_revalidated_after_the_ttl(
        world: World, prefixed: tuple[RegistryProcess, RegistryProcess]) -> None:
    _, proxy = prefixed
    push(world.small, world.upstream, "lib/moving:v1", world.policy)
    assert world.pulled(proxy, "one/lib/moving:v1", "m1") == world.small.manifest_digest
    push(world.other, world.upstream, "lib/moving:v1", world.policy)
    time.sleep(TTL + 0.5)
    assert world.pulled(proxy, "one/lib/moving:v1", "m2") == world.other.manifest_digest
    heads = [p for m, p, _ in access_log(world.upstream)
             if m == "HEAD" and p == "/v2/lib/moving/manifests/v1"]
    assert heads, "the tag was revalidated with a HEAD"


def test_a_blob_that_does_not_match_its_digest_is_never_stored(
        world: World, tmp_path: Path) -> None:
    bad = build_oci_layout(tmp_path / "bad", [200 * 1024], seed=9)
    push(bad, world.upstream, "lib/bad:v1", world.policy)
    layer = bad.blob_digests[1]
    data = (world.upstream_root / "docker/registry/v2/blobs/sha256" / layer[7:9] / layer[7:]
            / "data")
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    done = pull(world.mirror, "lib/bad:v1", tmp_path / "pulled", world.policy)
    assert done.returncode != 0
    stored = world.work / "mirror/docker/registry/v2/blobs/sha256" / layer[7:9] / layer[7:]
    assert not (stored / "data").exists()


def test_expiry_drops_cached_manifests_and_keeps_pushed_ones_and_blobs(
        world: World, prefixed: tuple[RegistryProcess, RegistryProcess]) -> None:
    _, proxy = prefixed
    assert world.pulled(proxy, "one/lib/small:v1", "e1") == world.small.manifest_digest
    push(world.small, proxy, "local/kept:v1", world.policy, creds=None)
    root = world.work / "prefixed"
    registry = Registry(load_driver("filesystem", rootdirectory=str(root)))
    config = parse_proxy({"upstreams": [{"prefix": "one", "remoteurl": world.upstream.url,
                                         "ttl": f"{TTL}s"}]})
    assert config is not None
    report = expire_cache(registry, config, now=time.time() + 10 * TTL)
    assert "one/lib/small:v1" in report.tags
    assert f"one/lib/small@{world.small.manifest_digest}" in report.manifests
    assert not registry.repository("one/lib/small").manifests.exists("v1")
    assert registry.repository("local/kept").manifests.exists("v1")
    for digest in world.small.blob_digests:  # shared with local/kept: gc decides, not expiry
        assert registry.repository("local/kept").blobs.exists(digest)
    # After expiry the cache fetches the image again.
    assert world.pulled(proxy, "one/lib/small:v1", "e2") == world.small.manifest_digest


def test_proxy_config_keys() -> None:
    assert parse_proxy(None) is None
    one = parse_proxy({"remoteurl": "https://r.example/", "username": "u", "password": "p",
                       "ttl": "1h"})
    assert one is not None and one.upstreams[0].ttl == 3600 and not one.allowpush
    assert one.route("library/alpine") == (one.upstreams[0], "library/alpine")
    many = parse_proxy({"upstreams": [{"prefix": "docker.io", "remoteurl": "https://a"},
                                      {"prefix": "docker.io/x", "remoteurl": "https://b"}]})
    assert many is not None
    assert many.route("docker.io/x/y")[1] == "y"  # type: ignore[index]  # longest prefix
    assert many.route("docker.io/library/a")[1] == "library/a"  # type: ignore[index]
    assert many.route("quay/a") is None
    for bad in ({"remoteurl": "ftp://x"}, {"upstreams": [{"prefix": "A B", "remoteurl": "http://x"}]},
                {"upstreams": [{"remoteurl": "http://x"}, {"remoteurl": "http://y"}]},
                {"ttl": "1h"}, {"remoteurl": "http://x", "bogus": 1}):
        with pytest.raises(ConfigError):
            parse_proxy(bad)




def test_counters_hits_misses_bytes_errors_and_stale_serves(world: World) -> None:
    """In-process servers (their ``ProxyStats`` readable) sharing one in-memory store."""
    driver = InMemoryDriver()
    live = parse_config({"proxy": {"remoteurl": world.upstream.url, "username": USER,
                                   "password": PASSWORD, "ttl": "0s"}})
    config, layer = world.small.blob_digests[0], world.small.blob_digests[1]
    with ThreadedServer(live, driver) as srv, httpx.Client(base_url=srv.url) as c:
        assert c.get("/v2/lib/small/manifests/v1").status_code == 200
        assert c.get(f"/v2/lib/small/blobs/{layer}").status_code == 200
        assert c.get(f"/v2/lib/small/blobs/{layer}").status_code == 200
        assert srv.app.state.proxy is not None
        stats = srv.app.state.proxy.stats.snapshot()
    assert stats["misses"] == 2 and stats["hits"] == 1
    layer_size = (world.small.path / "blobs/sha256" / layer[7:]).stat().st_size
    assert stats["upstream_bytes"] >= layer_size
    dead = parse_config({"proxy": {"remoteurl": f"http://127.0.0.1:{free_port()}", "ttl": "0s"}})
    with ThreadedServer(dead, driver) as srv, httpx.Client(base_url=srv.url) as c:
        resp = c.get("/v2/lib/small/manifests/v1")  # due for revalidation: upstream is gone
        assert resp.status_code == 200
        assert resp.headers["docker-content-digest"] == world.small.manifest_digest
        assert c.get(f"/v2/lib/small/blobs/{config}").status_code == 503
        assert srv.app.state.proxy is not None
        stats = srv.app.state.proxy.stats.snapshot()
    assert stats["stale_serves"] == 1 and stats["upstream_errors"] == 2


def test_an_abandoned_lease_is_broken(world: World) -> None:
    """A holder that died (its lease past the deadline) does not block the blob for good."""
    driver = InMemoryDriver()
    layer = world.small.blob_digests[2]
    stale = json.dumps({"owner": "dead", "expires": time.time() - 1}).encode()
    driver.put_content(lease_path(layer), stale)
    cfg = parse_config({"proxy": {"remoteurl": world.upstream.url, "username": USER,
                                  "password": PASSWORD}})
    with ThreadedServer(cfg, driver) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        resp = c.get(f"/v2/lib/small/blobs/{layer}")
        assert resp.status_code == 200
        assert "sha256:" + hashlib.sha256(resp.content).hexdigest() == layer
    with pytest.raises(FileNotFoundError):  # released after the fetch
        driver.stat(lease_path(layer))
