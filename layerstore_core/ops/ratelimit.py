"""A byte-rate limit shared by threads: copy and scrub read no faster than asked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: Seconds of traffic allowed in one burst after an idle spell.
BURST_S = 1.0


class RateLimiter:
    """``consume(n)`` sleeps as needed to keep the average at or under ``rate`` bytes/s.

    ``rate`` None or 0 means no limit. One limiter is shared by every job of a run, so the limit
    holds for the run as a whole.
    """

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate or None
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = clock()

    def consume(self, nbytes: int) -> None:
        if self.rate is None or nbytes <= 0:
            return
        with self._lock:
            now = self._clock()
            self._next = max(self._next, now - BURST_S) + nbytes / self.rate
            wait = self._next - now
        if wait > 0:
            self._sleep(wait)
