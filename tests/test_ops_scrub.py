"""The server's scheduled scrub: config keys, and a run that finds a flipped byte."""

from __future__ import annotations

import time

import pytest

from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.registry import paths as p
from layerstore_core.registry.leases import StorageLease
from layerstore_core.server import Config
from layerstore_core.server.config import ConfigError, ScrubConfig, parse_config
from layerstore_core.server.threaded import ThreadedServer
from tests.stores import populate


def test_scrub_config_keys() -> None:
    assert not parse_config(None, {}).scrub.enabled
    raw = {"storage": {"inmemory": {}, "maintenance": {"scrub": {
        "enabled": True, "interval": "6h", "ratelimit": 1048576}}}}
    assert parse_config(raw).scrub == ScrubConfig(True, 6 * 3600.0, 1048576)
    env = {"REGISTRY_STORAGE_MAINTENANCE_SCRUB_RATELIMIT": "0"}
    assert parse_config(raw, env).scrub.ratelimit == 0
    for bad, key in (({"ratelimit": "fast"}, "ratelimit"), ({"rate": 1}, "scrub.rate"),
                     ({"enabled": True, "interval": "0"}, "interval")):
        raw["storage"]["maintenance"]["scrub"] = bad  # type: ignore[index]
        with pytest.raises(ConfigError, match=key):
            parse_config(raw)


def test_server_scrub_counts_blobs_and_problems() -> None:
    driver = InMemoryDriver()
    images = populate(driver, big=4096)
    path = p.path_for(p.BlobDataPath(images[0].blobs[1]))
    data = bytearray(driver.get_content(path))
    data[0] ^= 1
    driver.put_content(path, bytes(data))
    cfg = Config(driver="inmemory", driver_params={}, secret="s",
                 scrub=ScrubConfig(enabled=True, interval=0.2, ratelimit=10 * 2**20))
    with ThreadedServer(cfg, driver) as srv:
        deadline = time.monotonic() + 30
        while srv.app.state.scrub.snapshot()["runs"] < 2:
            assert time.monotonic() < deadline, "the scrub never ran twice"
            time.sleep(0.1)
        stats = srv.app.state.scrub.snapshot()
    assert stats["last_problems"] == 1 and stats["problems_found"] >= 2
    assert stats["blobs_checked"] >= 2 * 12 and stats["bytes_checked"] > 0
    assert stats["failed_runs"] == 0 and stats["last_finished"] is not None


def test_one_scrub_at_a_time_across_a_fleet() -> None:
    """Another instance holding the ``scrub`` lease keeps this one from scrubbing; then it runs."""
    driver = InMemoryDriver()
    populate(driver, big=4096)
    rival = StorageLease(driver, "scrub", ttl=600, settle=0)
    rival.acquire()
    cfg = Config(driver="inmemory", driver_params={}, secret="s",
                 scrub=ScrubConfig(enabled=True, interval=0.2, ratelimit=10 * 2**20))
    with ThreadedServer(cfg, driver) as srv:
        time.sleep(3)  # several intervals: each finds the lease held and skips
        assert srv.app.state.scrub.snapshot()["runs"] == 0
        rival.release()
        deadline = time.monotonic() + 30
        while srv.app.state.scrub.snapshot()["runs"] < 1:
            assert time.monotonic() < deadline, "the scrub never ran once the lease was free"
            time.sleep(0.1)
    assert srv.app.state.scrub.snapshot()["failed_runs"] == 0
