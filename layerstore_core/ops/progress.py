"""Progress on a terminal (tqdm: objects, bytes, rate, ETA), and nothing when not a TTY.

tqdm is in the ``server`` extra (the operator's commands); without it, or when stderr is not a
terminal, :func:`progress_bar` returns a :class:`Progress` that shows nothing.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any


class Progress:
    """Counts objects and bytes; shows nothing. Thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.objects = 0
        self.bytes = 0

    def add_bytes(self, nbytes: int) -> None:
        with self.lock:
            self.bytes += nbytes
            self._show_bytes(nbytes)

    def add_object(self) -> None:
        with self.lock:
            self.objects += 1
            self._show_object()

    def close(self) -> None:
        """Remove the bar (the caller prints a summary)."""

    def _show_bytes(self, nbytes: int) -> None:
        """Nothing to show."""

    def _show_object(self) -> None:
        """Nothing to show."""


class _TqdmProgress(Progress):
    def __init__(self, bar: Any, total_objects: int) -> None:
        super().__init__()
        self._bar = bar
        self._total_objects = total_objects

    def _show_bytes(self, nbytes: int) -> None:
        self._bar.update(nbytes)

    def _show_object(self) -> None:
        self._bar.set_postfix_str(f"{self.objects}/{self._total_objects} objects", refresh=False)

    def close(self) -> None:
        self._bar.close()


def progress_bar(description: str, total_bytes: int, total_objects: int,
                 enabled: bool | None = None) -> Progress:
    """A tqdm bar on stderr when it is a terminal (or ``enabled``), else a silent counter."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return Progress()
    try:
        from tqdm import tqdm
    except ImportError:
        return Progress()
    bar = tqdm(total=total_bytes, desc=description, unit="B", unit_scale=True,
               unit_divisor=1024, file=sys.stderr, dynamic_ncols=True)
    return _TqdmProgress(bar, total_objects)


#: ``(total_bytes, total_objects) -> Progress``: how copy and verify make their bar once they
#: know the totals.
ProgressFactory = Callable[[int, int], Progress]
