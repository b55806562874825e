"""glibc malloc settings for a long-running server, so that RSS returns once uploads end.

Under concurrent uploads glibc's defaults keep memory: the mmap threshold grows to the largest
buffer freed so far, after which batch-sized buffers come from the heap arenas (one per busy
thread) and their freed space stays mapped. ``layerstore serve`` therefore fixes the threshold
(large buffers are mmapped and unmapped on free), caps the number of arenas, and trims the heap
when the last upload in flight ends. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading

log = logging.getLogger(__name__)

#: mallopt parameters (glibc's malloc.h).
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
#: Allocations at least this large are mmapped, so freeing one returns it to the system.
MMAP_THRESHOLD = 256 * 1024
#: Arenas per CPU (glibc's default is 8 per CPU, each keeping its own free space).
ARENAS_PER_CPU = 1


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # not glibc (musl, macOS): its allocator, its rules
        return None
    return libc


_LIBC = _glibc()
_lock = threading.Lock()
_uploads = 0


def tune_malloc() -> bool:
    """Apply the settings above to this process; False where the C library is not glibc."""
    if _LIBC is None:
        return False
    ok = bool(_LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1)
    ok = bool(_LIBC.mallopt(M_ARENA_MAX, ARENAS_PER_CPU * (os.cpu_count() or 1)) == 1) and ok
    if not ok:
        log.warning("mallopt refused the memory settings; RSS may stay high after loads")
    return ok


def upload_started() -> None:
    """Count an upload body in flight."""
    global _uploads
    with _lock:
        _uploads += 1


def upload_finished() -> None:
    """Uncount it; the last one to end hands freed heap pages back (``malloc_trim``)."""
    global _uploads
    with _lock:
        _uploads -= 1
        idle = _uploads == 0
    if idle and _LIBC is not None:
        _LIBC.malloc_trim(0)
