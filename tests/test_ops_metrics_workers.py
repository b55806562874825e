"""Metrics with ``http.workers: 2``: the supervisor's debug server reports every worker, summed.

The workers write to the ``PROMETHEUS_MULTIPROC_DIR`` the test names, so each worker's own
counts can be read apart (one copied file at a time) and compared with the scrape.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.backends._servers import free_port
from tests.images import RegistryProcess, write_config

TIMEOUT = 60.0
REQUESTS = "registry_http_requests_total"


def _base_requests(text: str) -> float:
    """``registry_http_requests_total{handler="base",method="GET",code="200"}`` in a text dump."""
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == REQUESTS and s.labels.get("handler") == "base"
               and s.labels.get("code") == "200")


def _per_worker(directory: Path, tmp: Path) -> dict[int, float]:
    """Each pid's own count, from its counter file read alone."""
    out: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = int(re.fullmatch(r"counter_(\d+)\.db", path.name).group(1))  # type: ignore[union-attr]
        alone = tmp / f"one-{pid}"
        alone.mkdir(exist_ok=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
        out[pid] = _base_requests(generate_latest(registry).decode())
    return out


def test_two_workers_are_scraped_as_one(tmp_path: Path) -> None:
    port, debug_port = free_port(), free_port()
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    config = write_config(tmp_path / "config.yml", "filesystem",
                          {"rootdirectory": str(tmp_path / "store")}, port, extra={"http": {
                              "workers": 2, "debug": {"addr": f"127.0.0.1:{debug_port}",
                                                      "prometheus": {"enabled": True}}}})
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    scrape_url = f"http://127.0.0.1:{debug_port}/metrics"
    with RegistryProcess.layerstore(config, port, tmp_path / "server.log", env=env) as proc:
        sent = 0
        deadline = time.monotonic() + TIMEOUT
        while True:  # one connection per request, so the kernel hands them to both workers
            for _ in range(20):
                assert httpx.get(f"{proc.url}/v2/", timeout=TIMEOUT).status_code == 200
                sent += 1
            per_worker = _per_worker(multiproc, tmp_path)
            if sum(1 for v in per_worker.values() if v > 0) >= 2:
                break
            assert time.monotonic() < deadline, f"one worker served everything: {per_worker}"
        # wait_ready's probes count too: the scrape's total is every worker's, not one's
        text = httpx.get(scrape_url, timeout=TIMEOUT).text
        total = _base_requests(text)
        assert total == sum(per_worker.values()) and total >= sent
        assert max(per_worker.values()) < total
        assert "layerstore_scrub_runs_total" in text  # the snapshot sources come through too

        # a worker that dies keeps its counts in the sum; its replacement adds to them
        victim = max(per_worker, key=lambda pid: per_worker[pid])
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + TIMEOUT
        while not any(pid not in per_worker for pid in _per_worker(multiproc, tmp_path)):
            assert time.monotonic() < deadline, "the killed worker was not replaced"
            time.sleep(0.2)
        for _ in range(20):
            httpx.get(f"{proc.url}/v2/", timeout=TIMEOUT)
        after = _base_requests(httpx.get(scrape_url, timeout=TIMEOUT).text)
        assert after >= total + 20
