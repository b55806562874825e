"""What a process that placed a blob may skip: the data HEAD for a while, the sweep check once.

Counted on the in-memory driver through a subclass that records the paths it is asked about
(the driver is real; only the counting is added).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time

import pytest

from layerstore_core.driver import FileInfo
from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.registry import ManifestBlobUnknownError, Registry
from layerstore_core.registry import paths as p
from layerstore_core.registry.cache import RecentWritesCache
from layerstore_core.registry.descriptor import Descriptor
from layerstore_core.registry.fence import SweepMarker, shard_of
from tests.test_fleet_cache import image_manifest as manifest
from tests.test_fleet_cache import push_blob as push
from tests.test_http_api import OCI_MANIFEST

SWEEP = p.path_for(p.GCSweepPath())


class CountingDriver(InMemoryDriver):
    """The in-memory driver, recording each content read and file stat by path."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []
        self.stats: list[str] = []

    def _get_content(self, path: str) -> bytes:
        self.reads.append(path)
        return super()._get_content(path)

    def _stat_file(self, path: str) -> FileInfo:
        self.stats.append(path)
        return super()._stat_file(path)

    def forget(self) -> None:
        self.reads.clear()
        self.stats.clear()


def data_path(digest: str) -> str:
    return p.path_for(p.BlobDataPath(digest))


def test_recent_writes_remember_only_what_was_written_and_only_for_the_ttl() -> None:
    cache = RecentWritesCache(ttl_s=0.2, entries=2)
    seen, written = Descriptor("sha256:" + "a" * 64, 1), Descriptor("sha256:" + "b" * 64, 2)
    cache.remember("r", seen)  # what a stat found in the storage: may be collected any time
    cache.remember_written(written)
    assert cache.lookup("r", seen.digest) == (False, None)
    assert cache.lookup("r", written.digest) == (False, written)  # never membership
    time.sleep(0.3)
    assert cache.lookup("r", written.digest) == (False, None)
    for n in range(3):
        cache.remember_written(Descriptor(f"sha256:{n}" + "c" * 63, n))
    assert cache.lookup("r", "sha256:0" + "c" * 63) == (False, None)  # bounded: oldest went
    cache.forget_blobs(["sha256:2" + "c" * 63])
    assert cache.lookup("r", "sha256:2" + "c" * 63) == (False, None)


def test_a_process_that_placed_the_blobs_does_not_look_at_their_data_again() -> None:
    driver = CountingDriver()
    registry = Registry(driver, RecentWritesCache())
    config, layer = push(registry, "r", b"{}"), push(registry, "r", b"layer")
    driver.forget()
    repo = registry.repository("r")
    repo.manifests.put(manifest(config, layer), OCI_MANIFEST, "v1")
    assert repo.blobs.stat(layer).size == 5
    assert data_path(layer) not in driver.stats and data_path(config) not in driver.stats
    links = [path for path in driver.reads if path.endswith("/link") and "_layers" in path]
    assert len(links) == 3, links  # membership is read every time

    other = Registry(driver, RecentWritesCache())  # another process of the fleet
    driver.forget()
    assert other.repository("r").blobs.stat(layer).size == 5
    assert driver.stats == [data_path(layer)]


def test_a_blob_found_stored_is_not_remembered() -> None:
    """Its data may be old, and so collected at any time: the next stat looks again."""
    driver = CountingDriver()
    push(Registry(driver), "first", b"layer")
    registry = Registry(driver, RecentWritesCache())
    layer = push(registry, "second", b"layer")
    driver.forget()
    assert registry.repository("second").blobs.stat(layer).size == 5
    assert driver.stats == [data_path(layer)]


def test_recent_writes_never_vouch_for_a_blob_unlinked_elsewhere() -> None:
    driver = InMemoryDriver()
    registry = Registry(driver, RecentWritesCache())
    config, layer = push(registry, "r", b"{}"), push(registry, "r", b"layer")
    driver.delete(p.path_for(p.LayerLinkPath("r", layer)))  # another instance's unlink
    with pytest.raises(ManifestBlobUnknownError):
        registry.repository("r").manifests.put(manifest(config, layer), OCI_MANIFEST)


def test_new_data_under_a_new_link_reads_no_sweep_marker() -> None:
    driver = CountingDriver()
    registry = Registry(driver)
    push(registry, "r", b"layer")
    assert SWEEP not in driver.reads


@pytest.mark.parametrize("how", ["stored", "linked"])
def test_a_commit_relying_on_what_was_there_reads_the_sweep_marker(how: str) -> None:
    """A blob found stored (a sweep may delete it), or a link already there (a sweep may have
    listed it for deletion), is checked against a sweep as before."""
    driver = CountingDriver()
    registry = Registry(driver)
    push(registry, "other" if how == "stored" else "r", b"layer")
    if how == "linked":
        driver.delete(data_path("sha256:" + hashlib.sha256(b"layer").hexdigest()))
    driver.forget()
    push(registry, "r", b"layer")
    assert SWEEP in driver.reads


def test_a_sweep_that_deleted_the_blob_before_the_push_leaves_the_new_one() -> None:
    """The sweep deleted the data and is about to delete the links it listed; the push
    places the data anew under a link of its own, which that sweep never listed."""
    driver = InMemoryDriver()
    registry = Registry(driver)
    doomed = push(registry, "old", b"layer")
    marker = SweepMarker("run", dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))
    driver.put_content(p.path_for(p.GCDoomedPath("run", shard_of(doomed))), doomed.encode())
    driver.put_content(SWEEP, marker.encode())
    driver.delete(data_path(doomed))  # the sweep's delete of the data; "old"'s link is next
    pushed = threading.Thread(target=push, args=(registry, "new", b"layer"), daemon=True)
    pushed.start()
    pushed.join(10)  # a commit that checked for the sweep would wait for the shard (minutes)
    assert not pushed.is_alive()
    driver.delete(p.path_for(p.LayerLinkPath("old", doomed)))  # the sweep's delete of links
    driver.delete(SWEEP)
    assert registry.repository("new").blobs.stat(doomed).size == 5
