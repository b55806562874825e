"""The scheduled collector's counters (``storage.maintenance.gc``), for a metrics exporter.

Kept as plain numbers so that the core needs no metrics library; the server exports
:meth:`GCStats.snapshot` on its metrics endpoint as ``layerstore_gc_…``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from .report import GCReport

#: Keys of :meth:`GCStats.snapshot` that are counters (``…_total``); the others are gauges.
TOTALS = ("runs", "failed_runs", "skipped_runs", "blobs_deleted", "manifests_deleted",
          "bytes_freed")


@dataclasses.dataclass
class GCStats:
    """Totals since the process started, and the last finished run's duration and time."""

    runs: int = 0
    failed_runs: int = 0
    #: Runs that found another collector holding the lease (a fleet collects once).
    skipped_runs: int = 0
    blobs_deleted: int = 0
    manifests_deleted: int = 0
    bytes_freed: int = 0
    last_seconds: float | None = None
    last_finished: float | None = None  # Unix time
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def finished(self, report: GCReport) -> None:
        """Count a finished run; a dry run deletes nothing, so it adds no deletions."""
        with self.lock:
            self.runs += 1
            if not report.dry_run:
                self.blobs_deleted += len(report.blobs_deleted)
                self.manifests_deleted += len(report.manifests_deleted)
                self.bytes_freed += report.bytes_freed
            self.last_seconds = report.duration_seconds
            self.last_finished = time.time()

    def failed(self) -> None:
        with self.lock:
            self.failed_runs += 1

    def skipped(self) -> None:
        with self.lock:
            self.skipped_runs += 1

    def snapshot(self) -> dict[str, Any]:
        """The counters as plain numbers (:data:`TOTALS`, ``last_seconds``, ``last_finished``)."""
        with self.lock:
            return {
                "runs": self.runs, "failed_runs": self.failed_runs,
                "skipped_runs": self.skipped_runs, "blobs_deleted": self.blobs_deleted,
                "manifests_deleted": self.manifests_deleted, "bytes_freed": self.bytes_freed,
                "last_seconds": self.last_seconds, "last_finished": self.last_finished,
            }
