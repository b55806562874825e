"""Socket reads into one fixed buffer per connection, instead of a new bytes object per read.

uvicorn's protocol is a plain ``asyncio.Protocol``: the event loop allocates a fresh bytes object
for every read (uvloop reads up to 256,000 bytes: just under glibc's mmap threshold, so each
comes from a heap arena), and under concurrent uploads those short-lived pieces are what keeps
RSS above the request batches themselves. :class:`BufferedReads` puts an
``asyncio.BufferedProtocol`` in front of the protocol: the loop reads into the connection's own
:data:`READ_SIZE` buffer, allocated once, and the parser is fed from there. The body it hands on
is then at most one read plus uvicorn's flow-control high-water mark (64 KiB: reading pauses
above it until the app takes the body), whatever the client sends.

A wrapper and not a mixin: uvloop reads into a buffer only for a protocol that is *not* an
``asyncio.Protocol``, and uvicorn's protocols are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

#: Bytes one socket read takes (uvicorn's flow-control high-water mark is as large).
READ_SIZE = 64 * 1024


class BufferedReads(asyncio.BufferedProtocol):
    """A protocol built by :attr:`protocol`, fed from one reused read buffer.

    Subclass it with :func:`buffered`. The wrapped protocol's ``data_received`` gets a view of
    the buffer, valid only until it returns (httptools copies what it keeps: the URL, headers
    and body pieces).
    """

    protocol: ClassVar[Callable[..., asyncio.Protocol]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.inner = type(self).protocol(*args, **kwargs)
        self._view: memoryview | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)
        self._view = None

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._view is None:
            self._view = memoryview(bytearray(READ_SIZE))
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        assert self._view is not None  # get_buffer came first
        self.inner.data_received(self._view[:nbytes])  # type: ignore[arg-type]  # any buffer does


def buffered(protocol: type[asyncio.Protocol]) -> type[BufferedReads]:
    """A :class:`BufferedReads` class that builds ``protocol`` (with the arguments it is given)."""
    return type(f"Buffered{protocol.__name__}", (BufferedReads,),
                {"protocol": protocol})
