"""Page-aligned byte buffers reused once nothing but their pool references them.

Streaming a blob through fresh buffers costs more than the copies that fill them: every fresh
buffer of glibc's mmap size is new pages, each faulted in and zeroed (on a VM whose freed memory
goes back to the host, a host fault as well), then unmapped. A pool hands out ``memoryview`` s
of anonymous ``mmap`` s instead. Whoever still uses a buffer — a queue, a storage write, a hash,
a transport that has not sent it all — holds that view or one made from it; every view made from
it shares the one export that references the mmap, so a buffer whose only references are the
pool's (CPython's reference count: the pool's list and ``getrefcount``'s argument) is free.
Page alignment also lets the filesystem driver write a buffer with O_DIRECT
(:attr:`.FileWriter.uncached`).
"""

from __future__ import annotations

import mmap
import sys


class BufferPool:
    """Buffers of ``size`` bytes, at most ``keep`` of them kept for reuse."""

    def __init__(self, size: int, keep: int) -> None:
        self.size = size
        self._keep = keep
        self._all: list[mmap.mmap] = []

    def take(self, n: int) -> memoryview:
        """A writable buffer of ``n`` bytes; pooled (page-aligned) when ``n`` is the size."""
        if n != self.size:
            return memoryview(bytearray(n))  # a last, shorter piece
        for i in range(len(self._all)):  # indexed: a loop variable would be a third reference
            if sys.getrefcount(self._all[i]) == 2:
                return memoryview(self._all[i])
        buf = mmap.mmap(-1, n)
        if len(self._all) < self._keep:
            self._all.append(buf)
        return memoryview(buf)
