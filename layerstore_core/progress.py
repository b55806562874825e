"""Progress of a long-running command: phases, items and bytes, drawn by rich on a terminal.

The algorithms (copy, verify, gc, the upload purge) report to the :class:`Progress` protocol and
never draw anything themselves; the server passes :class:`NoProgress`. A command asks
:func:`terminal_progress` for its display: rich on stderr when stderr is a terminal (and not
``--json``), one line per phase (bar, items, bytes, rate, elapsed, ETA), else a silent one. The
command prints its own summary afterwards. rich is in the ``server`` extra (the operator's
commands); without it the display is silent too.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID


class Progress(Protocol):
    """Receives the phases of a run and how far each got. Implementations are thread-safe."""

    def phase(self, name: str, total: int | None = None, *,
              total_bytes: int | None = None) -> None:
        """A new phase starts: ``total`` items and ``total_bytes`` bytes to go, when known."""

    def advance(self, items: int = 1, size: int = 0) -> None:
        """``items`` more done in this phase, ``size`` more bytes (both may be 0)."""


class NoProgress:
    """Progress that shows nothing (the server's runs, a pipe, ``--json``)."""

    def phase(self, name: str, total: int | None = None, *,
              total_bytes: int | None = None) -> None:
        pass

    def advance(self, items: int = 1, size: int = 0) -> None:
        pass


class RichProgressDisplay:
    """Phases drawn by rich on stderr; a finished phase stays as a line, the next one starts.

    A phase with ``total_bytes`` fills its bar by bytes (copy, verify), else by items (gc's
    phases, the purge); the other figure is shown beside it.
    """

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self._bar: RichProgress = RichProgress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[items]}"),
            TextColumn("{task.fields[size]}"), TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), refresh_per_second=4,
        )
        self._lock = threading.Lock()
        self._task: TaskID | None = None
        self._by_bytes = False
        self._total: int | None = None
        self._total_bytes: int | None = None
        self._items = 0
        self._bytes = 0
        self._rerouted: list[tuple[logging.StreamHandler[Any], Any]] = []

    def __enter__(self) -> RichProgressDisplay:
        stderr = sys.stderr
        self._bar.start()
        self._route_logging(stderr)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._finish_phase()
        for handler, stream in self._rerouted:
            handler.setStream(stream)
        self._bar.stop()

    def _route_logging(self, stderr: Any) -> None:
        """Log lines to stderr go through rich while it draws, above the bars, not across them."""
        if sys.stderr is stderr:  # rich did not redirect stderr: nothing to route through
            return
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is stderr:
                handler.setStream(sys.stderr)
                self._rerouted.append((handler, stderr))

    def phase(self, name: str, total: int | None = None, *,
              total_bytes: int | None = None) -> None:
        with self._lock:
            self._finish_phase()
            self._task = None
            self._by_bytes = total_bytes is not None
            self._total, self._total_bytes = total, total_bytes
            self._items = self._bytes = 0
            self._task = self._bar.add_task(
                name, total=total_bytes if self._by_bytes else total, **self._fields())

    def advance(self, items: int = 1, size: int = 0) -> None:
        with self._lock:
            if self._task is None:
                return
            self._items += items
            self._bytes += size
            self._bar.update(self._task, advance=size if self._by_bytes else items,
                             **self._fields())

    def _finish_phase(self) -> None:
        """Stop the phase's clock; a phase without a known total shows as full."""
        if self._task is None:
            return
        if self._bar.tasks[-1].total is None:
            self._bar.update(self._task, total=self._bytes if self._by_bytes else self._items)
        self._bar.stop_task(self._task)

    def _fields(self) -> dict[str, Any]:
        from rich.filesize import decimal

        items = f"{self._items}" if self._items else ""
        if self._total is not None:
            items = f"{self._items}/{self._total}"
        size = ""
        if self._total_bytes is not None:
            size = f"{decimal(self._bytes)}/{decimal(self._total_bytes)}"
        elif self._bytes:
            size = decimal(self._bytes)
        rate = ""
        if self._task is not None:
            speed = self._bar.tasks[-1].speed
            if speed is not None:
                rate = f"{decimal(int(speed))}/s" if self._by_bytes else f"{speed:.0f}/s"
        return {"items": items, "size": size, "rate": rate}


def progress_enabled(quiet: bool = False) -> bool:
    """Whether to draw: stderr is a terminal, the output is not for a script, rich is there."""
    if quiet or not sys.stderr.isatty():
        return False
    try:
        import rich  # noqa: F401  (the server extra)
    except ImportError:
        return False
    return True


@contextmanager
def terminal_progress(quiet: bool = False) -> Iterator[Progress]:
    """The command's display: rich on a terminal (see :func:`progress_enabled`), else silent."""
    if not progress_enabled(quiet):
        yield NoProgress()
        return
    with RichProgressDisplay() as display:
        yield display
