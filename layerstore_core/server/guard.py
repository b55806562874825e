"""Connection limits enforced before any request reaches the app (so before authentication).

uvicorn's httptools protocol has a keep-alive timeout and nothing else: no bound on the request
line and headers (httptools buffers a header until it ends, so one 64 MiB header costs 64 MiB), no
timeout while headers or a body trickle in, and only a 503 *after* the headers for too many
connections. :class:`GuardedProtocol` adds those around the unchanged parser, as a small
per-connection state machine::

    connection made ──> HEAD ──headers complete──> BODY ──message complete──> APP
                         ^   (header timer: 408)     (body idle timer: close)   │
                         └──────── IDLE (uvicorn's keep-alive timer) <──response┘

* HEAD: bytes of the request line and headers are counted; past ``max_header_bytes`` the answer
  is 414 when the URL is most of it, else 431, and the connection closes. The header timer runs
  from the connection's start, or from the first byte after the previous response.
* BODY: a timer restarted by every byte; it is suspended while reading is paused because the app
  has not taken the bytes yet (a slow backend is not an idle client). On expiry the connection
  closes and the app sees a disconnect (an upload keeps what arrived).
* More connections than ``max_connections``: 503 at once and closed, before a byte is read.
* Closing with a body unread (a 401 before the body, a refusal): the response is sent, then a
  FIN, and reading stays paused; the socket closes :data:`LINGER` seconds later. Closing at once
  with unread bytes makes the kernel send a RST that can destroy the response before the client
  reads it (Go's net/http waits 500 ms for the same reason). The body is never read.

Why here and not another server: hypercorn and h11 bound the header size (answering 400, not
431) but have no header-read deadline that a client sending one byte a second cannot reset, and
both parse slower than httptools, which the load benchmark needs. The guard is ~150 lines on
uvicorn's public protocol hooks (``http=`` takes a protocol class) and keeps httptools' speed.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Any, ClassVar, cast

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .config import Limits
from .reads import BufferedReads, buffered

log = logging.getLogger(__name__)

#: Seconds between the FIN after a response and the close, when a body is left unread.
LINGER = 1.0


class _Phase(enum.Enum):
    IDLE = "idle"
    HEAD = "head"
    BODY = "body"
    APP = "app"


def refusal(status: int, message: str) -> bytes:
    """A complete ``Connection: close`` response written straight to the transport."""
    body = message.encode("ascii")
    return b"".join([
        STATUS_LINE[status],
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: ", str(len(body)).encode("ascii"), b"\r\n",
        b"connection: close\r\n\r\n",
        body,
    ])


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`Limits`; bind them with :func:`protocol_for`."""

    limits: ClassVar[Limits] = Limits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _Phase.IDLE
        self._head_bytes = 0
        self._refused = False
        self._refusal = b""
        self._timer: asyncio.TimerHandle | None = None

    # -- connection ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn narrows BaseTransport too
        lingering = cast(asyncio.Transport, _LingeringTransport(transport, self))  # duck-typed
        super().connection_made(lingering)
        if len(self.connections) > self.limits.max_connections:
            log.warning("over http.maxconnections (%d): refusing a connection",
                        self.limits.max_connections)
            self._refuse(503, "too many connections")
            return
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._phase is _Phase.IDLE:
            self._start_head()
        if self._phase is _Phase.HEAD:
            self._head_bytes += len(data)
        elif self._phase is _Phase.BODY:
            self._arm(self.limits.body_timeout, self._body_timed_out)
        super().data_received(data)
        if self._refused and not self.transport.is_closing():
            self.transport.write(self._refusal)
            self.transport.close()
        elif self._phase is _Phase.HEAD and self._head_bytes > self.limits.max_header_bytes:
            self._refuse_oversized()

    # -- parser callbacks ---------------------------------------------------------------------
    def on_headers_complete(self) -> None:
        if self._refused:
            return
        size = len(self.url) + sum(len(k) + len(v) + 4 for k, v in self.headers)
        if size > self.limits.max_header_bytes:
            self._refuse_oversized(defer=True)
            return
        super().on_headers_complete()
        self._phase = _Phase.BODY
        self._arm(self.limits.body_timeout, self._body_timed_out)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._phase = _Phase.APP
        self._cancel_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._phase is _Phase.APP and (self.cycle is None or self.cycle.response_complete):
            self._phase = _Phase.IDLE

    # -- helpers ------------------------------------------------------------------------------
    def _start_head(self) -> None:
        self._phase = _Phase.HEAD
        self._head_bytes = 0
        self._arm(self.limits.header_timeout, self._header_timed_out)

    def _refuse_oversized(self, defer: bool = False) -> None:
        url_mostly = 2 * len(self.url) > max(self._head_bytes, self.limits.max_header_bytes)
        status, what = (414, "URL") if url_mostly else (431, "request headers")
        self._refuse(status, f"{what} larger than {self.limits.max_header_bytes} bytes",
                     defer=defer)

    def _refuse(self, status: int, message: str, defer: bool = False) -> None:
        """Answer ``status`` and close; deferred while the parser is still feeding."""
        self._refused = True
        self._cancel_timer()
        self._refusal = refusal(status, message)
        if not defer:
            self.transport.write(self._refusal)
            self.transport.close()

    def unread_input(self) -> bool:
        """Whether the client may still be sending (headers or a body not read to the end)."""
        return self._refused or self._phase in (_Phase.HEAD, _Phase.BODY)

    def _arm(self, seconds: float, callback: Any) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(seconds, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _header_timed_out(self) -> None:
        self._timer = None
        if self._phase is _Phase.HEAD and not self.transport.is_closing():
            log.info("request headers not complete after http.readheadertimeout: closing")
            self._refuse(408, "request headers not received in time")

    def _body_timed_out(self) -> None:
        self._timer = None
        if self._phase is not _Phase.BODY or self.transport.is_closing():
            return
        if self.flow.read_paused:  # the app has not taken what arrived: not the client's fault
            self._arm(self.limits.body_timeout, self._body_timed_out)
            return
        log.info("request body idle for http.bodyidletimeout: closing the connection")
        self.transport.close()


class _LingeringTransport:
    """The connection's transport, whose ``close`` lingers while the client may still send."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._closing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def close(self) -> None:
        if self._closing or self._transport.is_closing():
            return
        self._closing = True
        if not self._protocol.unread_input():
            self._transport.close()
            return
        self._transport.pause_reading()
        if self._transport.can_write_eof():
            self._transport.write_eof()  # the response and a FIN reach the client first
        self._protocol.loop.call_later(LINGER, self._transport.close)


def protocol_for(limits: Limits) -> type[BufferedReads]:
    """A :class:`GuardedProtocol` bound to ``limits``, reading into one buffer (:mod:`.reads`).

    uvicorn makes one a connection.
    """
    return buffered(type("GuardedProtocol", (GuardedProtocol,), {"limits": limits}))
