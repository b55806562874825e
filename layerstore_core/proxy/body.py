"""An upstream blob body in large chunks, read from the connection itself.

httpx hands a body over as h11 parses it: 64 KiB pieces, each copied into h11's receive buffer
and out again, which a cold pull then joins into chunks (a third copy): on a loaded 2-core
machine those copies cost more than hashing. A body with a ``Content-Length`` is read here from
httpcore's ``network_stream`` instead (the response extension httpcore hands out for this): first
the piece h11 already holds (the one ``iter_raw`` piece it has buffered with the headers — h11
gives all it holds up to the length in one event), then the rest straight into a chunk-sized
buffer (``recv_into`` on a plain connection, no copy in user space; ``read`` pieces copied once
on TLS). h11 never sees the body end, so the connection is closed with the response, not
pooled: one connect per blob. Bodies without a length (chunked) are read through httpx. The
bytes are checked by the caller (the upload's digest), so a short or garbled read is never
stored.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import httpcore
import httpx

from ..buffers import BufferPool
from .errors import UpstreamError

#: Largest read from a TLS connection (it decrypts a record or a few per call anyway), bytes.
TLS_READ = 2**20
#: Timeout of each read from the connection, seconds (as the upstream client's).
READ_TIMEOUT = 30.0
#: Chunk buffers kept for reuse: the queue, the chunk held back, one being written, one read,
#: the client's transport's.
KEEP = 12

Chunk = bytes | bytearray | memoryview
_Fill = Callable[[memoryview], int]


def body_chunks(resp: httpx.Response, size: int) -> Iterator[Chunk]:
    """``resp``'s raw body (no content decoding) in ``size``-byte chunks, the last shorter.

    The caller closes ``resp``. Fewer bytes than the ``Content-Length`` is an UpstreamError.
    """
    length = _content_length(resp)
    stream = resp.extensions.get("network_stream")
    if length is None or stream is None or "transfer-encoding" in resp.headers:
        yield from batches(resp.iter_raw(), size)
        return
    pieces = resp.iter_raw()  # kept referenced until the end: dropping it closes the connection
    first = next(pieces, b"") if length else b""
    if len(first) >= length:
        if first:
            yield from batches(iter((first,)), size)
        return
    sock = stream.get_extra_info("socket") if resp.url.scheme == "http" else None
    fill = _receiver(sock) if isinstance(sock, socket.socket) else _reader(stream)
    held = memoryview(first)  # h11's piece goes first, through the same buffers

    def read_into(into: memoryview) -> int:
        nonlocal held
        if not held.nbytes:
            return fill(into)
        n = min(held.nbytes, into.nbytes)
        into[:n], held = held[:n], held[n:]
        return n

    buffers = BufferPool(size, KEEP)
    left = length
    while left:
        buf = buffers.take(min(size, left))
        view, filled = memoryview(buf), 0
        while filled < view.nbytes:
            got = read_into(view[filled:])
            if not got:
                raise UpstreamError(f"upstream closed the body {left - filled} bytes short "
                                    f"of {length}")
            filled += got
        del view
        left -= filled
        yield buf
    del pieces


def batches(pieces: Iterator[bytes], size: int) -> Iterator[Chunk]:
    """``pieces`` joined into ``size``-byte chunks (one copy; the last one shorter)."""
    batch: list[bytes] = []
    have = 0
    for piece in pieces:
        batch.append(piece)
        have += len(piece)
        if have >= size:
            yield b"".join(batch)
            batch, have = [], 0
    if batch:
        yield b"".join(batch)


def _content_length(resp: httpx.Response) -> int | None:
    text = resp.headers.get("content-length", "")
    return int(text) if text.isascii() and text.isdigit() else None


def _receiver(sock: socket.socket) -> _Fill:
    sock.settimeout(READ_TIMEOUT)

    def fill(into: memoryview) -> int:
        try:
            return sock.recv_into(into)
        except OSError as exc:
            raise UpstreamError(f"reading the upstream body: {exc}") from exc
    return fill


def _reader(stream: httpcore.NetworkStream) -> _Fill:
    def fill(into: memoryview) -> int:
        try:
            data = stream.read(min(TLS_READ, into.nbytes), READ_TIMEOUT)
        except Exception as exc:  # httpcore's ReadError/ReadTimeout, OSError
            raise UpstreamError(f"reading the upstream body: {exc}") from exc
        into[:len(data)] = data
        return len(data)
    return fill

