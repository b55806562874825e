"""The pull-through cache's counters, for the metrics exporter to read (or wrap) later."""

from __future__ import annotations

import dataclasses
import threading


@dataclasses.dataclass
class ProxyStats:
    """Monotonic counters; ``add`` is safe from any thread."""

    hits: int = 0
    misses: int = 0
    upstream_bytes: int = 0
    upstream_errors: int = 0
    stale_serves: int = 0
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False,
                                              compare=False)

    def add(self, counter: str, n: int = 1) -> None:
        """Increase one counter by ``n``."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + n)

    def snapshot(self) -> dict[str, int]:
        """All counters at one instant."""
        with self._lock:
            return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                    if not f.name.startswith("_")}
