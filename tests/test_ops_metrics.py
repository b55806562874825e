"""Metrics, health and the debug server (issue 14): Distribution's names, after a real skopeo run.

One ``layerstore serve`` subprocess with ``http.debug`` and ``health.storagedriver`` takes a
skopeo push and pull; the scrape must show the counters moved with route-name labels, and the
health check must go red when the storage root becomes unreadable and green again after.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.server import Config, metrics
from layerstore_core.server.app import route_name
from layerstore_core.server.config import ConfigError, DebugConfig, parse_config
from layerstore_core.server.metrics import STORAGE_ACTION
from layerstore_core.server.threaded import ThreadedServer
from layerstore_core.testing import Backend
from tests.backends._servers import free_port
from tests.images import (
    MiB,
    RegistryProcess,
    build_oci_layout,
    read_oci_layout,
    skopeo,
    write_config,
    write_policy,
)

ROUTES = {"root", "base", "catalog", "tags", "manifest", "blob", "blob_upload",
          "blob_upload_chunk", "unknown"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    text = httpx.get(url, timeout=10).text
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def wait_for(predicate: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[RegistryProcess, str, Path]]:
    port, debug_port = free_port(), free_port()
    root = tmp_path / "store"
    config = write_config(tmp_path / "config.yml", "filesystem", {"rootdirectory": str(root)},
                          port, extra={
                              "http": {"debug": {"addr": f"127.0.0.1:{debug_port}",
                                                 "prometheus": {"enabled": True}}},
                              "health": {"storagedriver": {"enabled": True, "interval": "200ms",
                                                           "threshold": 2}},
                          })
    with RegistryProcess.layerstore(config, port, tmp_path / "server.log") as proc:
        yield proc, f"http://127.0.0.1:{debug_port}", root


def test_metrics_after_skopeo_push_and_pull(served: tuple[RegistryProcess, str, Path],
                                            tmp_path: Path) -> None:
    proc, debug, _ = served
    image = build_oci_layout(tmp_path / "layout", (4096, 2 * MiB), tag="v1")
    policy = write_policy(tmp_path / "policy.json")
    host = f"127.0.0.1:{proc.port}"
    push = skopeo("copy", "--dest-tls-verify=false", f"oci:{image.path}:v1",
                  f"docker://{host}/ops/app:v1", policy=policy)
    assert push.returncode == 0, push.stderr
    pull = skopeo("copy", "--src-tls-verify=false", f"docker://{host}/ops/app:v1",
                  f"oci:{tmp_path / 'pulled'}:v1", policy=policy)
    assert pull.returncode == 0, pull.stderr
    assert read_oci_layout(tmp_path / "pulled", "v1")[0] == image.manifest_digest

    m = scrape(debug + "/metrics")
    assert value(m, "registry_http_requests_total", handler="manifest", method="PUT",
                 code="201") == 1
    assert value(m, "registry_http_requests_total", handler="blob_upload", method="POST") >= 3
    assert value(m, "registry_http_requests_total", handler="manifest", method="GET",
                 code="200") >= 1
    assert value(m, "registry_http_requests_total", handler="blob", method="GET",
                 code="200") >= 3
    handlers = {dict(ls)["handler"] for (n, ls), _ in m.items()
                if n == "registry_http_requests_total"}
    assert handlers <= ROUTES, handlers  # route names, never raw paths
    assert value(m, "registry_http_request_duration_seconds_count", handler="manifest") >= 2
    assert value(m, "registry_http_in_flight_requests", handler="blob") == 0
    assert value(m, "registry_http_request_size_bytes_sum") >= 2 * MiB + 4096
    assert value(m, "registry_http_response_size_bytes_sum", handler="blob") >= 2 * MiB + 4096
    assert value(m, "registry_storage_action_seconds_count", driver="filesystem",
                 action="PutContent") >= 1
    assert value(m, "registry_storage_action_seconds_count", driver="filesystem",
                 action="Reader") >= 3
    assert value(m, "layerstore_registry_events_total", event="blob.commit") >= 3
    assert value(m, "layerstore_http_received_bytes_total") >= 2 * MiB + 4096
    assert value(m, "layerstore_http_served_bytes_total", handler="blob") >= 2 * MiB + 4096
    assert value(m, "layerstore_uploads_in_progress") == 0
    assert value(m, "process_resident_memory_bytes") > 0


def test_health_goes_red_and_green(served: tuple[RegistryProcess, str, Path]) -> None:
    proc, debug, root = served
    assert httpx.get(debug + "/debug/health").json() == {}
    assert httpx.get(proc.url + "/").status_code == 200
    root.mkdir(exist_ok=True)
    aside = root.with_name("aside")
    root.rename(aside)
    root.symlink_to(root.name)  # a symlink loop: every stat fails (ELOOP), even for root

    def red() -> bool:
        return httpx.get(debug + "/debug/health").status_code == 503
    wait_for(red)
    body = httpx.get(debug + "/debug/health").json()
    assert list(body) == ["storagedriver_filesystem"], body
    v2 = httpx.get(proc.url + "/v2/")
    assert v2.status_code == 503 and v2.json()["errors"][0]["code"] == "UNAVAILABLE"
    assert httpx.get(proc.url + "/").status_code == 200  # the load-balancer probe stays up

    root.unlink()
    aside.rename(root)
    wait_for(lambda: httpx.get(debug + "/debug/health").status_code == 200)
    assert httpx.get(proc.url + "/v2/").status_code == 200


def test_root_answers_200_without_auth_and_debug_404(tmp_path: Path) -> None:
    cfg = Config(driver="inmemory", driver_params={}, secret="s",
                 debug=DebugConfig("127.0.0.1", free_port(), prometheus=False))
    with ThreadedServer(cfg, InMemoryDriver()) as srv:
        assert httpx.get(srv.url + "/").status_code == 200
        assert httpx.head(srv.url + "/").status_code == 200
        debug = srv.app.debug
        assert debug is not None
        assert httpx.get(debug.url + "/metrics").status_code == 404  # prometheus not enabled
        assert httpx.get(debug.url + "/debug/health").json() == {}  # no checks configured
        assert httpx.post(debug.url + "/debug/health").status_code == 405


def _timed(driver: str, action: str) -> float:
    """How many calls ``registry_storage_action_seconds`` has counted for driver and action."""
    return sum(s.value for s in STORAGE_ACTION.collect()[0].samples
               if s.name.endswith("_count") and s.labels == {"driver": driver, "action": action})


def test_every_driver_is_timed_in_the_core(any_backend: Backend) -> None:
    metrics.install()  # what create_app does
    driver = any_backend.make()
    before = {a: _timed(driver.name, a) for a in ("PutContent", "Stat", "List", "Delete")}
    try:
        driver.put_content("/ops/metrics/a", b"x")
        driver.stat("/ops/metrics/a")
        driver.list("/ops/metrics")
        driver.delete("/ops/metrics")
    finally:
        driver.close()
    assert all(_timed(driver.name, a) == n + 1 for a, n in before.items()), before


@pytest.mark.parametrize(("path", "name"), [
    ("/", "root"), ("/v2/", "base"), ("/v2", "base"), ("/v2/_catalog", "catalog"),
    ("/v2/a/b/tags/list", "tags"), ("/v2/a/manifests/v1", "manifest"),
    ("/v2/a/blobs/sha256:00", "blob"), ("/v2/a/blobs/uploads/", "blob_upload"),
    ("/v2/a/blobs/uploads", "blob_upload"), ("/v2/a/blobs/uploads/123", "blob_upload_chunk"),
    ("/v3/x", "unknown"), ("/v2/a/nothing", "unknown"),
])
def test_route_names(path: str, name: str) -> None:
    assert route_name(path) == name


def test_debug_and_health_config() -> None:
    raw = {"http": {"debug": {"addr": ":5001", "prometheus": {"enabled": True,
                                                              "path": "/m"}}},
           "health": {"storagedriver": {"enabled": True, "interval": "5s", "threshold": 3}}}
    cfg = parse_config(raw, os.environ | {})
    assert cfg.debug == DebugConfig("0.0.0.0", 5001, True, "/m")
    assert (cfg.health.enabled, cfg.health.interval, cfg.health.threshold) == (True, 5.0, 3)
    assert parse_config(None).debug is None and not parse_config(None).health.enabled
    bad = [
        {"http": {"debug": {"prometheus": {"enabled": True}}}},
        {"http": {"debug": {"addr": "nope"}}},
        {"http": {"debug": {"addr": ":5001", "prometheus": {"path": "metrics"}}}},
        {"http": {"debug": {"addr": ":5001", "pprof": {}}}},
        {"health": {"storagedriver": {"enabled": True, "interval": "0"}}},
        {"health": {"storagedriver": {"threshold": "x"}}},
    ]
    for doc in bad:
        with pytest.raises(ConfigError):
            parse_config(doc)


def test_scrub_and_cache_counters_are_scraped(tmp_path: Path) -> None:
    """Counters kept without prometheus-client (scrub, blob-cache fallbacks) reach /metrics."""
    cfg = Config(driver="inmemory", driver_params={}, secret="s",
                 debug=DebugConfig("127.0.0.1", free_port(), prometheus=True))
    with ThreadedServer(cfg, InMemoryDriver()) as srv:
        debug = srv.app.debug
        assert debug is not None
        url = debug.url + "/metrics"
        before = scrape(url)
        assert before[("layerstore_scrub_runs_total", frozenset())] >= 0
        assert ("layerstore_cache_fallbacks_total", frozenset()) in before
        srv.app.state.scrub.runs += 1  # what a finished scheduled scrub does
        after = scrape(url)
        assert after[("layerstore_scrub_runs_total", frozenset())] == \
            before[("layerstore_scrub_runs_total", frozenset())] + 1
