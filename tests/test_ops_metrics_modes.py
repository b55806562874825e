"""Snapshot metrics with several workers: times are the latest, last-run values the most recent.

Two worker processes (real ones, each with prometheus-client in multiprocess mode on the same
directory, as ``serve --workers 2`` starts them) copy a gc snapshot out as the workers' sync loop
does; the supervisor's exposition must show the latest ``last_finished`` (not the sum of two
timestamps), the ``last_seconds`` of the run that finished last, and each run counted once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from layerstore_core.server import metrics

#: A worker: export a gc snapshot it reads line by line from stdin, sync after each.
WORKER = """
import json, sys
from layerstore_core.server import metrics
current = {}
metrics.export_snapshot("gc", lambda: current, totals=("runs", "skipped_runs"))
for line in sys.stdin:
    current.clear()
    current.update(json.loads(line))
    metrics._SNAPSHOTS.sync()
    print("synced", flush=True)
"""


class Worker:
    def __init__(self, directory: Path) -> None:
        env = {**os.environ, metrics.MULTIPROC_ENV: str(directory)}
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def sync(self, snapshot: dict[str, float | None]) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(snapshot) + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "synced\n"

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0


def _scrape(directory: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(directory))
    text, _ = metrics.exposition(None)
    return {s.name: s.value for f in text_string_to_metric_families(text.decode())
            for s in f.samples if s.name.startswith("layerstore_gc_")}


def test_times_are_the_latest_and_runs_count_once(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = Worker(tmp_path), Worker(tmp_path)
    try:
        # a collects (the lease is its), b finds the lease held; then b collects, a skips
        a.sync({"runs": 1, "skipped_runs": 0, "last_finished": 1_000.0, "last_seconds": 5.0})
        b.sync({"runs": 0, "skipped_runs": 1, "last_finished": None, "last_seconds": None})
        b.sync({"runs": 1, "skipped_runs": 1, "last_finished": 2_000.0, "last_seconds": 7.0})
        a.sync({"runs": 1, "skipped_runs": 1, "last_finished": 1_000.0, "last_seconds": 5.0})
        a.sync({"runs": 1, "skipped_runs": 1, "last_finished": 1_000.0, "last_seconds": 5.0})
        seen = _scrape(tmp_path, monkeypatch)
        assert seen["layerstore_gc_last_finished"] == 2_000.0  # not 3,000: the latest
        assert seen["layerstore_gc_last_seconds"] == 7.0  # b's run finished last (not 12)
        assert seen["layerstore_gc_runs_total"] == 2.0  # each run once, synced many times
        assert seen["layerstore_gc_skipped_runs_total"] == 2.0
    finally:
        a.stop()
        b.stop()
    # the workers are gone (their files stay): the last run's values outlive them
    seen = _scrape(tmp_path, monkeypatch)
    assert seen["layerstore_gc_last_finished"] == 2_000.0
    assert seen["layerstore_gc_runs_total"] == 2.0


def test_gauge_modes() -> None:
    """In-progress counts are summed over live workers; a snapshot gauge never is."""
    assert metrics.UPLOADS_IN_PROGRESS._multiprocess_mode == "livesum"
    assert metrics.HTTP_IN_FLIGHT._multiprocess_mode == "livesum"
    assert metrics.snapshot_mode("last_finished") == "max"
    assert metrics.snapshot_mode("last_seconds") == "mostrecent"
    assert metrics.snapshot_mode("last_problems") == "mostrecent"
