"""The server's scheduled scrub (``storage.maintenance.scrub``): verify, slowly, over and over.

Each run is a full :func:`~.verify.verify_store` at ``ratelimit`` bytes/s; problems are logged
(they need an operator: ``layerstore verify --repair FROM``), never repaired on their own. In a
fleet (or with ``--workers``) one instance scrubs at a time: the server runs it under the fleet
lease ``scrub``, renewed as the verify advances (a rate-limited run lasts hours).
:class:`ScrubStats` holds the counters; a metrics exporter reads :meth:`ScrubStats.snapshot`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..driver import StorageDriver
from ..progress import NoProgress
from ..registry.leases import LeaseLostError
from .verify import VerifyCounters, VerifyOptions, VerifyReport, count_by_kind, verify_store

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ScrubStats:
    """Totals since the process started, and the last run's result."""

    counters: VerifyCounters = dataclasses.field(default_factory=VerifyCounters)
    runs: int = 0
    failed_runs: int = 0
    last_problems: int | None = None
    last_finished: float | None = None  # Unix time
    last_seconds: float | None = None
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> dict[str, Any]:
        """The counters as plain numbers, for a metrics exporter.

        Totals: ``runs``, ``failed_runs``, ``blobs_checked``, ``bytes_checked``,
        ``problems_found``; the last run: ``last_problems``, ``last_finished``, ``last_seconds``.
        """
        with self.lock, self.counters.lock:
            return {
                "runs": self.runs, "failed_runs": self.failed_runs,
                "blobs_checked": self.counters.blobs_checked,
                "bytes_checked": self.counters.bytes_checked,
                "problems_found": self.counters.problems_found,
                "last_problems": self.last_problems, "last_finished": self.last_finished,
                "last_seconds": self.last_seconds,
            }


class _Renewing(NoProgress):
    """Calls ``keep`` (a lease's keep-alive) as the verify advances, per blob and per chunk."""

    def __init__(self, keep: Callable[[], None]) -> None:
        self._keep = keep

    def advance(self, items: int = 1, size: int = 0) -> None:
        self._keep()


def scrub_once(driver: StorageDriver, rate_limit: float | None, stats: ScrubStats,
               keep: Callable[[], None] | None = None) -> VerifyReport | None:
    """One full verify at the rate limit; None when it failed (logged, counted).

    ``keep`` renews the fleet lease the run holds; a :class:`LeaseLostError` it raises stops
    the run and is passed on (not a failure: another instance scrubs now).
    """
    start = time.monotonic()
    try:
        report = verify_store(driver, VerifyOptions(jobs=1, rate_limit=rate_limit),
                              counters=stats.counters,
                              progress=_Renewing(keep) if keep is not None else None)
    except LeaseLostError:
        raise
    except Exception:
        log.exception("scrub failed")
        with stats.lock:
            stats.failed_runs += 1
        return None
    with stats.lock:
        stats.runs += 1
        stats.last_problems = len(report.problems)
        stats.last_finished = time.time()
        stats.last_seconds = time.monotonic() - start
    counts = count_by_kind(report.problems)
    log.log(logging.WARNING if counts else logging.INFO,
            "scrub: %d blob(s), %d bytes re-hashed; problems: %s", report.blobs_checked,
            report.bytes_checked, counts or "none")
    return report
