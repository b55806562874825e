"""The ASGI layer that measures every request: route, status, bytes each way, duration.

It wraps ``receive`` and ``send`` rather than the handlers, so whatever answers a request
(a handler, an error, a disconnect) is counted once, and the finished :class:`RequestRecord`
goes to every consumer (metrics, the access log).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from .http import Message, Receive, Scope, Send
from .metrics import RequestRecord, request_finished, request_started


def set_user(scope: Scope, user: str) -> None:
    """Record the authenticated user of the request ``scope`` belongs to."""
    record = scope.get("layerstore.record")
    if isinstance(record, RequestRecord):
        record.user = user


Consumer = Callable[[RequestRecord], None]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def instrumented(scope: Scope, receive: Receive, send: Send, app: ASGIApp, route: str,
                       consumers: Sequence[Consumer] = ()) -> None:
    """Run ``app`` on one HTTP request, counting it under ``route`` (a route name)."""
    record = RequestRecord(scope["method"], scope["path"], route, scope)
    scope["layerstore.record"] = record  # the app adds what only it knows (the user)

    async def counting_receive() -> Message:
        message = await receive()
        record.bytes_in += len(message.get("body", b""))
        return message

    async def counting_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            record.status = int(message["status"])
            record.response_headers = list(message.get("headers", []))
        else:
            record.bytes_out += len(message.get("body", b""))
        await send(message)

    request_started(record)
    try:
        await app(scope, counting_receive, counting_send)
    finally:
        record.duration = time.perf_counter() - record.started
        request_finished(record)
        for consume in consumers:
            consume(record)
