"""Garbage collection through the Python API: marking rules, grace, retention, lease, fence."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from layerstore_core import load_driver
from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.gc import GCBusyError, RetentionPolicy, StorageLease
from layerstore_core.registry import BlobUnknownError, ManifestBlobUnknownError, Registry
from layerstore_core.registry import paths as p
from layerstore_core.registry.cache import InMemoryDescriptorCache
from layerstore_core.registry.fence import SweepMarker, shard_of
from layerstore_core.server import Config
from layerstore_core.server.config import ConfigError, DebugConfig, GCConfig, parse_config
from layerstore_core.server.threaded import ThreadedServer
from tests.backends._servers import free_port
from tests.gc_store import age_tree, blobs_in, push_blob, push_image, push_index

NO_GRACE = dt.timedelta(0)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def registry() -> Registry:
    return Registry(InMemoryDriver())


@pytest.fixture
def fs_root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def fs_registry(fs_root: Path) -> Registry:
    return Registry(load_driver("filesystem", rootdirectory=str(fs_root)))


def run(registry: Registry, **options: object):  # type: ignore[no-untyped-def]
    options.setdefault("grace", NO_GRACE)
    lease = StorageLease(registry.driver, settle=0.01)
    return registry.collect_garbage(lease=lease, **options)  # type: ignore[arg-type]


def test_collected_blobs_leave_the_descriptor_cache() -> None:
    """The sweep calls ``Registry.blobs_removed``: the cache never answers for a collected blob."""
    registry = Registry(InMemoryDriver(), InMemoryDescriptorCache())
    kept = push_image(registry, "a/b", "1", tag="v1")
    orphan = push_blob(registry, "a/b", b"never referenced")["digest"]
    blobs = registry.repository("a/b").blobs
    assert blobs.stat(orphan).size == len(b"never referenced")  # now cached
    assert registry.cache is not None and registry.cache.lookup("a/b", orphan)[1] is not None
    assert run(registry).blobs_deleted == [orphan]
    assert registry.cache.lookup("a/b", orphan) == (False, None)
    with pytest.raises(BlobUnknownError):
        blobs.stat(orphan)
    assert kept.all <= blobs_in(registry)


def test_default_mode_keeps_every_revision(registry: Registry) -> None:
    first = push_image(registry, "a/b", "1", tag="v1")
    second = push_image(registry, "a/b", "2", tag="v1")  # first is now untagged
    orphan = push_blob(registry, "a/b", b"never referenced")["digest"]
    report = run(registry)
    assert report.blobs_deleted == [orphan]
    assert first.all | second.all <= blobs_in(registry)
    assert not registry.repository("a/b").blobs.exists(orphan)
    assert run(registry).blobs_deleted == []


def test_delete_untagged_keeps_index_children_and_referrers(registry: Registry) -> None:
    amd, arm = push_image(registry, "r", "amd"), push_image(registry, "r", "arm")
    push_index(registry, "r", [amd, arm], tag="multi")
    tagged = push_image(registry, "r", "tagged", tag="v1")
    signature = push_image(registry, "r", "sig", subject=tagged)
    untagged = push_image(registry, "r", "untagged")
    its_signature = push_image(registry, "r", "sig2", subject=untagged)
    report = run(registry, delete_untagged=True)
    assert set(report.blobs_deleted) == untagged.all | its_signature.all
    assert {d for _, d in report.manifests_deleted} == {untagged.digest, its_signature.digest}
    manifests = registry.repository("r").manifests
    for kept in (amd, arm, tagged, signature):
        assert manifests.exists(kept.digest)
        assert kept.all <= blobs_in(registry)
    assert not manifests.exists(untagged.digest)


def test_grace_spares_young_blobs_and_links(fs_registry: Registry, fs_root: Path) -> None:
    orphan = push_blob(fs_registry, "g", b"young orphan")["digest"]
    assert run(fs_registry, grace=HOUR).blobs_deleted == []
    age_tree(fs_root, 7200)
    push_blob(fs_registry, "other", b"young orphan")  # a young link to the old blob
    assert run(fs_registry, grace=HOUR).blobs_deleted == []
    age_tree(fs_root, 7200)
    report = run(fs_registry, grace=HOUR)
    assert report.blobs_deleted == [orphan] and report.links_deleted == 2


def test_retention_policies(fs_registry: Registry, fs_root: Path) -> None:
    images = {tag: push_image(fs_registry, "app", tag, tag=tag)
              for tag in ("release-1", "old-1", "old-2", "new-1", "new-2")}
    push_image(fs_registry, "keep/me", "k", tag="old-3")
    age_tree(fs_root, 3 * 86400)
    for tag in ("new-1", "new-2"):  # pushed again: recent
        push_image(fs_registry, "app", tag, tag=tag)
    policies = [
        RetentionPolicy(repositories="keep/*"),
        RetentionPolicy(keep_latest=2, keep_tags=re.compile("release-.*"),
                        delete_older_than=dt.timedelta(days=1)),
    ]
    dry = run(fs_registry, retention=policies, delete_untagged=True, dry_run=True)
    assert dry.tags_deleted == [("app", "old-1"), ("app", "old-2")]
    assert fs_registry.repository("app").tags.list() == sorted(images)
    report = run(fs_registry, retention=policies, delete_untagged=True)
    assert report.tags_deleted == dry.tags_deleted
    assert fs_registry.repository("app").tags.list() == ["new-1", "new-2", "release-1"]
    assert set(report.blobs_deleted) == images["old-1"].all | images["old-2"].all


def test_one_collector_at_a_time(registry: Registry) -> None:
    holder = StorageLease(registry.driver, settle=0.01)
    holder.acquire()
    with pytest.raises(GCBusyError):
        run(registry)
    holder.release()
    stale = StorageLease(registry.driver, ttl=0.0, settle=0.01)
    stale.acquire()  # expires at once: the next collector takes over
    run(registry)


def doom(registry: Registry, digests: set[str]) -> None:
    """Publish a sweep of ``digests`` the way a collector does: shards, then the marker."""
    driver = registry.driver
    for digest in digests:
        driver.put_content(p.path_for(p.GCDoomedPath("test", shard_of(digest))), digest.encode())
    marker = SweepMarker("test", dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))
    driver.put_content(p.path_for(p.GCSweepPath()), marker.encode())


def collect_now(registry: Registry, digest: str, repos: list[str]) -> None:
    """What the sweep does to a doomed blob: data and links go, then its shard."""
    driver = registry.driver
    driver.delete(p.path_for(p.BlobPath(digest)))
    for repo in repos:
        driver.delete(p.path_for(p.LayerLinkPath(repo, digest)))
    driver.delete(p.path_for(p.GCDoomedPath("test", shard_of(digest))))


def in_thread(fn: object) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []

    def target() -> None:
        try:
            out.append(fn())  # type: ignore[operator]
        except Exception as exc:  # the test inspects it
            out.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, out


def test_commit_of_a_doomed_blob_waits_and_restores_it(registry: Registry) -> None:
    data = b"a blob a sweep is about to delete"
    digest = push_blob(registry, "old", data)["digest"]
    doom(registry, {digest})
    thread, out = in_thread(lambda: push_blob(registry, "new", data))
    time.sleep(0.6)
    assert thread.is_alive(), "the commit did not wait for the sweep"
    collect_now(registry, digest, ["old"])
    thread.join(30)
    assert out and not isinstance(out[0], Exception), out
    assert registry.repository("new").blobs.exists(digest)
    with registry.repository("new").blobs.open(digest) as f:
        assert f.read() == data


def test_manifest_put_on_a_collected_blob_is_blob_unknown(registry: Registry) -> None:
    image = push_image(registry, "r", "x")
    manifests = registry.repository("r").manifests
    content = manifests.get(image.digest).content
    manifests.delete(image.digest)
    layer = sorted(image.blobs)[0]
    doom(registry, {layer})
    # the client saw the blob (HEAD) before the sweep and PUTs the manifest without uploading
    thread, out = in_thread(lambda: manifests.put(content, None, tag="v1"))
    time.sleep(0.6)
    assert thread.is_alive()
    collect_now(registry, layer, ["r"])
    thread.join(30)
    assert isinstance(out[0], ManifestBlobUnknownError)
    assert not registry.repository("r").manifests.exists(image.digest)
    assert registry.repository("r").tags.list() == []


class LinkDuringSweep:
    """Progress that links a doomed blob into a repository just before the sweep's last look."""

    def __init__(self, registry: Registry, digest: str) -> None:
        self.registry, self.digest = registry, digest

    def phase(self, name: str, total: int | None = None) -> None:
        if name == "re-checking repositories":
            link = p.path_for(p.LayerLinkPath("late", self.digest))
            self.registry.driver.put_content(link, self.digest.encode())

    def advance(self, items: int = 1, size: int = 0) -> None:
        pass


def test_sweep_spares_a_blob_linked_during_the_run(fs_registry: Registry, fs_root: Path) -> None:
    digest = push_blob(fs_registry, "r", b"old orphan")["digest"]
    age_tree(fs_root, 7200)
    report = run(fs_registry, grace=HOUR, progress=LinkDuringSweep(fs_registry, digest))
    assert report.blobs_deleted == [] and report.rescued == 1
    assert fs_registry.repository("late").blobs.exists(digest)
    left = [i.path for i in fs_registry.driver.walk(p.path_for(p.GCPath())) if not i.is_dir]
    assert not left, "gc state left behind"


def test_cli_reports_a_busy_lease(fs_registry: Registry, fs_root: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from layerstore_core.cli import main

    config = tmp_path / "c.yml"
    config.write_text(f"storage:\n  filesystem:\n    rootdirectory: {fs_root}\n")
    StorageLease(fs_registry.driver, settle=0.01).acquire()
    assert main(["gc", "--config", str(config)]) == 1
    assert "holds the gc lease" in capsys.readouterr().err
    assert main(["gc", "--config", str(config), "--dry-run", "--grace", "0s"]) == 0
    assert "would delete 0 blobs" in capsys.readouterr().out


def test_config_keys() -> None:
    cfg = parse_config({"storage": {"inmemory": {}, "maintenance": {
        "gc": {"enabled": True, "interval": "2h", "grace": "30m", "deleteuntagged": True},
        "retention": [{"repositories": "ci/*", "keeplatest": 5, "keeptags": "v.*",
                       "deleteolderthan": "720h"}],
    }}})
    assert cfg.gc == GCConfig(enabled=True, interval=7200, grace=1800, deleteuntagged=True)
    (policy,) = cfg.retention
    assert policy.repositories == "ci/*" and policy.keep_latest == 5
    assert policy.delete_older_than == dt.timedelta(hours=720)
    for bad in ({"gc": {"every": "1h"}}, {"retention": [{"keeplatest": "x"}]},
                {"retention": {"keeplatest": 1}}, {"retention": [{"keeptags": "("}]}):
        with pytest.raises(ConfigError, match="storage.maintenance"):
            parse_config({"storage": {"inmemory": {}, "maintenance": bad}})


def test_server_collects_on_schedule() -> None:
    cfg = Config(driver="inmemory", driver_params={}, secret="s",
                 gc=GCConfig(enabled=True, interval=0.3, grace=0.0))
    data = b"pushed and abandoned"
    with ThreadedServer(cfg, InMemoryDriver()) as srv, httpx.Client(base_url=srv.url) as c:
        digest = c.post("/v2/s/blobs/uploads/", params={"digest": _sha(data)},
                        content=data).headers["Docker-Content-Digest"]
        deadline = time.monotonic() + 30
        while c.head(f"/v2/s/blobs/{digest}").status_code == 200:
            assert time.monotonic() < deadline, "the server never collected the blob"
            time.sleep(0.2)


def test_scheduled_gc_counters_are_scraped() -> None:
    """Runs, deletions, bytes freed and the last run's time reach the metrics endpoint."""
    cfg = Config(driver="inmemory", driver_params={}, secret="s",
                 gc=GCConfig(enabled=True, interval=0.3, grace=0.0),
                 debug=DebugConfig("127.0.0.1", free_port(), prometheus=True))
    data = b"pushed, abandoned and collected on schedule"
    driver = InMemoryDriver()
    other = StorageLease(driver, "gc", settle=0.01)
    other.acquire()  # another collector holds the lease: the first runs are skipped
    with ThreadedServer(cfg, driver) as srv, httpx.Client(base_url=srv.url) as c:
        assert srv.app.debug is not None
        url = srv.app.debug.url + "/metrics"
        c.post("/v2/s/blobs/uploads/", params={"digest": _sha(data)}, content=data)
        _scrape_until(url, lambda m: m["layerstore_gc_skipped_runs_total"] >= 1)
        other.release()
        got = _scrape_until(url, lambda m: m["layerstore_gc_blobs_deleted_total"] >= 1)
    assert got["layerstore_gc_runs_total"] >= 1
    assert got["layerstore_gc_bytes_freed_total"] == len(data)
    assert got["layerstore_gc_manifests_deleted_total"] == 0
    assert got["layerstore_gc_failed_runs_total"] == 0
    assert got["layerstore_gc_last_seconds"] >= 0
    assert abs(got["layerstore_gc_last_finished"] - time.time()) < 600


def _scrape_until(url: str, done: Callable[[dict[str, float]], bool]) -> dict[str, float]:
    deadline = time.monotonic() + 60
    while True:
        text = httpx.get(url, timeout=10).text
        samples = {s.name: s.value for family in text_string_to_metric_families(text)
                   for s in family.samples if s.name.startswith("layerstore_gc_")}
        if samples and done(samples):
            return samples
        assert time.monotonic() < deadline, f"gc metrics never got there: {samples}"
        time.sleep(0.2)


def _sha(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()
