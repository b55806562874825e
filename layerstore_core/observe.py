"""Hooks through which the core reports what it does, for a metrics exporter.

The core has no metrics library: it calls the observers registered here (the server's
``metrics`` module registers Prometheus ones). With none registered a report costs one empty
loop. Observers must be cheap and must not raise; they run on the calling thread.
"""

from __future__ import annotations

from collections.abc import Callable

#: ``(driver name, action, seconds)`` after every storage call (``StorageDriver._call``).
StorageObserver = Callable[[str, str, float], None]
#: ``(event name, count)``: see :data:`EVENTS`.
EventObserver = Callable[[str, int], None]

#: The events the core reports, and what each counts.
EVENTS = {
    "hashstate.resume": "an upload continued from its saved hash state",
    "hashstate.reread": "an upload's hash rebuilt by re-reading its data",
    "blob.commit": "a blob upload committed into the store",
    "upload.purge": "an abandoned upload purged (or found, on a dry run)",
}

_storage: list[StorageObserver] = []
_events: list[EventObserver] = []


def on_storage_call(observer: StorageObserver) -> None:
    """Register ``observer`` for every storage call (idempotent)."""
    if observer not in _storage:
        _storage.append(observer)


def on_event(observer: EventObserver) -> None:
    """Register ``observer`` for the core's events (idempotent)."""
    if observer not in _events:
        _events.append(observer)


def storage_call(driver: str, action: str, seconds: float) -> None:
    """Report one storage call."""
    for observer in _storage:
        observer(driver, action, seconds)


def event(name: str, count: int = 1) -> None:
    """Report ``count`` occurrences of the event ``name`` (a key of :data:`EVENTS`)."""
    for observer in _events:
        observer(name, count)
