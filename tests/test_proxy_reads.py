"""The pull-through cache's tag lists, catalog, Range on uncached blobs, and expiry → gc.

Upstream = Distribution 2.8.2 with htpasswd (images pushed by skopeo); the caches are in-process
servers, so their counters and storage are at hand.

- ``tags/list`` of a proxied name answers the upstream's tags (paged here), the cached ones when
  the upstream is down; an unknown upstream name is NAME_UNKNOWN; ``_catalog`` lists what the
  cache holds, as Distribution's proxy does.
- A Range on an uncached blob is a 206 served from the one upstream fetch, which caches the whole
  blob; an unsatisfiable one is 416 and the fetch still caches it.
- The server's expiry pass is followed by garbage collection: an expired cached image's blobs
  are deleted, a blob a pushed image shares stays.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from layerstore_core import load_driver
from layerstore_core.driver import StorageDriver
from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.proxy import cache, expiry
from layerstore_core.proxy.tags import _next_page
from layerstore_core.registry import Registry
from layerstore_core.server.config import parse_config
from layerstore_core.server.threaded import ThreadedServer
from tests.backends._servers import free_port
from tests.images import ImageLayout, RegistryProcess, build_oci_layout, write_policy
from tests.proxy_env import PASSWORD, USER, access_log, push, start_distribution

pytestmark = pytest.mark.timeout(300)


class Upstream:
    """Distribution with ``lib/small:{v1,v2,v3}`` and ``lib/other:v1``."""

    def __init__(self, work: Path) -> None:
        self.policy = write_policy(work / "policy.json")
        self.small = build_oci_layout(work / "small", [256 * 1024, 512 * 1024], seed=11)
        self.other = build_oci_layout(work / "other", [300 * 1024], seed=12)
        self.proc: RegistryProcess = start_distribution(work / "upstream", work, "upstream")
        for tag in ("v1", "v2", "v3"):
            push(self.small, self.proc, f"lib/small:{tag}", self.policy)
        push(self.other, self.proc, "lib/other:v1", self.policy)

    def proxy(self, **extra: object) -> dict[str, object]:
        return {"remoteurl": self.proc.url, "username": USER, "password": PASSWORD, **extra}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    up = Upstream(tmp_path_factory.mktemp("proxy-reads"))
    try:
        yield up
    finally:
        up.proc.stop()


def blob_bytes(image: ImageLayout, digest: str) -> bytes:
    return (image.path / "blobs/sha256" / digest[7:]).read_bytes()


def test_tag_list_comes_from_the_upstream_and_the_cache_when_it_is_down(
        upstream: Upstream) -> None:
    driver = InMemoryDriver()
    live = parse_config({"proxy": upstream.proxy()})
    with ThreadedServer(live, driver) as srv, httpx.Client(base_url=srv.url) as c:
        resp = c.get("/v2/lib/small/tags/list")  # nothing cached yet
        assert resp.status_code == 200
        assert resp.json() == {"name": "lib/small", "tags": ["v1", "v2", "v3"]}
        page = c.get("/v2/lib/small/tags/list", params={"n": "2"})
        assert page.json()["tags"] == ["v1", "v2"]
        assert 'rel="next"' in page.headers["link"] and "last=v2" in page.headers["link"]
        assert c.get("/v2/lib/small/tags/list", params={"last": "v2"}).json()["tags"] == ["v3"]
        missing = c.get("/v2/lib/nothing/tags/list")
        assert missing.status_code == 404
        assert missing.json()["errors"][0]["code"] == "NAME_UNKNOWN"
        assert c.get("/v2/_catalog").json() == {"repositories": []}  # only what it holds
        assert c.get("/v2/lib/small/manifests/v2").status_code == 200
        assert c.get("/v2/_catalog").json() == {"repositories": ["lib/small"]}
    lists = [p for m, p, _ in access_log(upstream.proc) if p.startswith("/v2/lib/small/tags")]
    assert lists, "the tag list was asked upstream"
    dead = parse_config({"proxy": {"remoteurl": f"http://127.0.0.1:{free_port()}"}})
    with ThreadedServer(dead, driver) as srv, httpx.Client(base_url=srv.url) as c:
        resp = c.get("/v2/lib/small/tags/list")
        assert resp.status_code == 200 and resp.json()["tags"] == ["v2"]  # the cached tag
        assert srv.app.state.proxy is not None
        stats = srv.app.state.proxy.stats.snapshot()
    assert stats["stale_serves"] == 1 and stats["upstream_errors"] == 1


def test_next_page_link_parsing() -> None:
    assert _next_page('</v2/a/tags/list?n=2&last=b>; rel="next"') == {"n": "2", "last": "b"}
    assert _next_page('<https://evil.example/v2/x?last=c>; rel=next') == {"last": "c"}
    assert _next_page('</v2/a/tags/list?n=2>; rel="next"') is None  # no cursor: stop
    assert _next_page("") is None and _next_page('</x?last=a>; rel="prev"') is None


def test_range_on_an_uncached_blob_is_a_206_from_the_one_fetch(upstream: Upstream) -> None:
    driver = InMemoryDriver()
    live = parse_config({"proxy": upstream.proxy()})
    layer = upstream.other.blob_digests[1]
    data = blob_bytes(upstream.other, layer)
    url = f"/v2/lib/other/blobs/{layer}"
    with ThreadedServer(live, driver) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        resp = c.get(url, headers={"Range": "bytes=1000-199999"})
        assert resp.status_code == 206
        assert resp.headers["content-range"] == f"bytes 1000-199999/{len(data)}"
        assert resp.content == data[1000:200000]
        suffix = c.get(url, headers={"Range": "bytes=-100"})  # now served from storage
        assert suffix.status_code == 206 and suffix.content == data[-100:]
        whole = c.get(url)
        assert whole.status_code == 200 and whole.content == data
        config = upstream.other.blob_digests[0]
        size = len(blob_bytes(upstream.other, config))
        bad = c.get(f"/v2/lib/other/blobs/{config}", headers={"Range": f"bytes={size + 5}-"})
        assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{size}"
        assert bad.json()["errors"][0]["code"] == "RANGE_INVALID"
        registry = Registry(driver)
        deadline = time.monotonic() + 60
        while not registry.repository("lib/other").blobs.exists(config):  # fetched anyway
            assert time.monotonic() < deadline, "the fetch behind a 416 did not cache the blob"
            time.sleep(0.1)
        assert srv.app.state.proxy is not None
        assert srv.app.state.proxy.stats.snapshot()["misses"] == 2
    gets = [p for m, p, s in access_log(upstream.proc)
            if m == "GET" and p.endswith(layer) and s == 200]
    assert len(gets) == 1


def _pull(c: httpx.Client, name: str, image: ImageLayout) -> None:
    assert c.get(f"/v2/{name}/manifests/v1").status_code == 200
    for digest in image.blob_digests:
        resp = c.get(f"/v2/{name}/blobs/{digest}")
        assert resp.status_code == 200
        assert "sha256:" + hashlib.sha256(resp.content).hexdigest() == digest


def _push(c: httpx.Client, name: str, image: ImageLayout) -> None:
    for digest in image.blob_digests:
        resp = c.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest},
                      content=blob_bytes(image, digest))
        assert resp.status_code == 201, resp.text
    manifest = blob_bytes(image, image.manifest_digest)
    media_type = json.loads(manifest).get("mediaType", "application/vnd.oci.image.manifest.v1+json")
    resp = c.put(f"/v2/{name}/manifests/v1", content=manifest,
                 headers={"Content-Type": media_type})
    assert resp.status_code == 201, resp.text


def _age(driver: StorageDriver, name: str, digest: str, by: float) -> None:
    """Make a cached image's records ``by`` seconds older (as if its ttl had passed)."""
    put = driver.put_content
    put(cache.tag_record_path(name, "v1"),
        json.dumps({"digest": digest, "checked": time.time() - by}).encode())
    put(cache.manifest_record_path(name, digest),
        json.dumps({"fetched": time.time() - by}).encode())


def test_expiry_is_followed_by_gc_and_keeps_a_blob_a_pushed_image_shares(
        upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expiry, "MIN_INTERVAL", 0.3)  # a pass every 0.3 s, not every minute
    monkeypatch.setattr(expiry, "MAX_INTERVAL", 0.3)
    root = tmp_path / "cache"
    driver = load_driver("filesystem", rootdirectory=str(root))
    config = parse_config({
        "storage": {"filesystem": {"rootdirectory": str(root)},
                    "maintenance": {"gc": {"grace": "0s"}}},  # gc not scheduled: expiry runs it
        "proxy": {"allowpush": True,
                  "upstreams": [{"prefix": "one", **upstream.proxy(ttl="1h")}]},
    })
    small, other = upstream.small, upstream.other
    blob_dir = root / "docker/registry/v2/blobs/sha256"

    def stored(digest: str) -> bool:
        return (blob_dir / digest[7:9] / digest[7:] / "data").exists()

    with ThreadedServer(config, driver) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        _pull(c, "one/lib/small", small)
        _pull(c, "one/lib/other", other)
        _push(c, "local/kept", small)  # every blob of small is now also a pushed image's
        assert all(stored(d) for d in small.blob_digests + other.blob_digests)
        _age(driver, "one/lib/small", small.manifest_digest, 7200)
        _age(driver, "one/lib/other", other.manifest_digest, 7200)
        deadline = time.monotonic() + 120
        while any(stored(d) for d in other.blob_digests):
            assert time.monotonic() < deadline, "expiry + gc did not reclaim the blobs"
            time.sleep(0.2)
        registry = Registry(driver)
        assert not registry.repository("one/lib/other").manifests.exists(other.manifest_digest)
        assert not registry.repository("one/lib/small").manifests.exists(small.manifest_digest)
        assert all(stored(d) for d in small.blob_digests)  # shared with local/kept
        _pull(c, "local/kept", small)
        _pull(c, "one/lib/other", other)  # expired: fetched again
