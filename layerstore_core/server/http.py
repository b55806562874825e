"""Minimal ASGI request/response plumbing: just what the registry API needs, streamed.

Kept framework-free on purpose: the API is a dozen routes, and owning the ``receive``/``send``
loop is what lets request bodies reach the (synchronous) blob service in large batches and blob
reads go out without ever holding a whole blob.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from ..registry.errors import RegistryError, SizeInvalidError
from .errors import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
#: What :func:`parse_decimal` gives for a number of more than 19 digits (above any size).
HUGE = 2**63
_DECIMAL = re.compile(r"[0-9]+")


def parse_decimal(text: str) -> int | None:
    r"""ASCII digits as an int, else None (``str.isdigit`` and ``\d`` accept ``²``).

    Longer than 19 digits is :data:`HUGE`, so no request converts thousands of digits (Python
    refuses past 4300 with a ValueError).
    """
    if not _DECIMAL.fullmatch(text):
        return None
    return int(text) if len(text) <= 19 else HUGE


class ClientDisconnected(Exception):
    """The client went away before sending its whole body."""


class Request:
    """One HTTP request: method, decoded path, query, headers and a one-shot body stream."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self._receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query = {k: v for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1"),
                                                keep_blank_values=True).items()}
        self.headers: dict[str, str] = {}
        for key, value in scope.get("headers", []):
            name, text = key.decode("latin-1").lower(), value.decode("latin-1")
            seen = self.headers.get(name)
            self.headers[name] = text if seen is None else f"{seen}, {text}"  # RFC 9110 5.3
        self._consumed = False

    def arg(self, name: str) -> str | None:
        """Return the first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def content_length(self) -> int | None:
        raw = self.headers.get("content-length")
        if raw is None:
            return None
        length = parse_decimal(raw.strip())
        if length is None or length == HUGE:
            raise SizeInvalidError("malformed Content-Length", detail=raw[:100])
        return length

    @property
    def has_body(self) -> bool:
        """Whether the client announced a body (a length > 0, or chunked encoding)."""
        length = self.content_length
        if length is not None:
            return length > 0
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    @property
    def body_unread(self) -> bool:
        """Whether a body was announced and nothing has read it (so the connection must close)."""
        if self._consumed:
            return False
        try:
            return self.has_body
        except SizeInvalidError:  # a malformed Content-Length: the body's end is unknown
            return True

    async def stream(self) -> AsyncIterator[bytes]:
        """Yield the body as it arrives (a disconnect raises :class:`ClientDisconnected`)."""
        if self._consumed:
            return
        self._consumed = True
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return

    async def read(self, limit: int, too_large: type[RegistryError]) -> bytes:
        """Read the whole body, for small documents (manifests); over ``limit``: ``too_large``."""
        buf = bytearray()
        async for chunk in self.stream():
            buf += chunk
            if len(buf) > limit:
                raise too_large(f"body larger than {limit} bytes")
        return bytes(buf)

    async def drain(self) -> None:
        """Discard an unused body so the connection stays usable."""
        async for _ in self.stream():
            pass


@dataclasses.dataclass
class Response:
    """A status, headers, and a body given whole (small) or as an async iterator (blobs)."""

    status: int
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    body: bytes | AsyncIterator[bytes | bytearray | memoryview] = b""  # cold proxied: views
    #: Set for HEAD: announce ``Content-Length`` but send no body.
    head: bool = False

    def header(self, name: str, value: str | int) -> Response:
        self.headers.append((name, str(value)))
        return self


def json_response(
    status: int, document: bytes, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    hdrs = [("Content-Type", "application/json"), ("Content-Length", str(len(document)))]
    return Response(status, hdrs + list(headers), document)


def error_response(err: RegistryError, head: bool = False) -> Response:
    resp = json_response(err.status, error_body(err), err.headers.items())
    resp.head = head
    return resp


def empty(status: int, **headers: str | int) -> Response:
    """Build a bodiless response; keyword names use ``_`` for ``-``."""
    resp = Response(status, [("Content-Length", "0")])
    for name, value in headers.items():
        resp.header(name.replace("_", "-"), value)
    return resp


async def send_response(send: Send, resp: Response) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers]
    headers.append((API_VERSION_HEADER[0].encode(), API_VERSION_HEADER[1].encode()))
    await send({"type": "http.response.start", "status": resp.status, "headers": headers})
    if resp.head:
        if not isinstance(resp.body, bytes):
            await resp.body.aclose()  # type: ignore[attr-defined]  # bodies are async generators
        await send({"type": "http.response.body", "body": b""})
        return
    if isinstance(resp.body, bytes):
        await send({"type": "http.response.body", "body": resp.body})
        return
    body = resp.body
    try:
        async for chunk in body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    finally:
        await body.aclose()  # type: ignore[attr-defined]  # bodies are async generators
    await send({"type": "http.response.body", "body": b""})


async def gather_quietly(*aws: Awaitable[Any]) -> None:
    """Await everything, ignoring failures (cleanup after an error already being reported)."""
    await asyncio.gather(*aws, return_exceptions=True)
