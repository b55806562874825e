"""Blob routes: HEAD, GET (whole, one Range, or a 307 to the backend) and DELETE."""

from __future__ import annotations

import re

from ..proxy.blobs import Subscriber
from ..registry.errors import RangeInvalidError, UnsupportedError
from .http import Request, Response, empty, parse_decimal
from .state import ServerState

_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """Return the inclusive byte range a ``Range`` asks for; None to serve the whole blob.

    Several ranges, or another unit, are ignored (RFC 9110 allows that); a single range that
    cannot be satisfied is RANGE_INVALID, except on an empty blob, which is served whole as Go's
    ``http.ServeContent`` (so Distribution) does for clients that send a Range on every GET.
    """
    m = _RANGE.match(value.strip().replace(" ", ""))
    if not m or size == 0:
        return None
    first, last = m.group(1), m.group(2)
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        n = parse_decimal(last) or 0
        if n == 0:
            raise _unsatisfiable(size)
        return max(size - n, 0), size - 1
    start = parse_decimal(first) or 0
    stop = parse_decimal(last) if last else None  # 19+ digits: HUGE, past any blob's end
    end = min(stop, size - 1) if stop is not None else size - 1
    if start >= size or (stop is not None and stop < start):
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> RangeInvalidError:
    return RangeInvalidError("requested range not satisfiable",
                             headers={"Content-Range": f"bytes */{size}"})


def _headers(digest: str) -> list[tuple[str, str]]:
    return [
        ("Content-Type", "application/octet-stream"),
        ("Docker-Content-Digest", digest),
        ("ETag", f'"{digest}"'),
        ("Accept-Ranges", "bytes"),
        ("Cache-Control", "max-age=31536000"),
    ]


async def head(state: ServerState, req: Request, name: str, digest: str) -> Response:
    """HEAD: served here, never redirected (clients probe existence and size with it)."""
    if state.proxy is not None and state.proxy.claims(name):
        upstream_size = await state.proxy.blob_size(name, digest)
        if upstream_size is not None:
            return Response(200, _headers(digest) + [("Content-Length", str(upstream_size))],
                            head=True)
    repo = state.registry.repository(name)
    size = (await state.run(repo.blobs.stat, digest)).size
    hdrs = _headers(digest) + [("Content-Length", str(size))]
    return Response(200, hdrs, head=True)


async def get(state: ServerState, req: Request, name: str, digest: str) -> Response:
    """GET: a 307 to the backend where it offers one, else the bytes (one Range → 206).

    A pull-through cache's miss streams from the upstream fetch, a Range (206) too: the whole
    blob is fetched into the cache and the range served as it passes.
    """
    if state.proxy is not None and state.proxy.claims(name):
        fetched = await state.proxy.blob(name, digest)
        if fetched is not None:
            return _from_fetch(req, digest, *fetched)
    repo = state.registry.repository(name)
    desc = await state.run(repo.blobs.stat, digest)
    size = desc.size
    if not state.config.redirect_disabled:
        url = await state.run(repo.blobs.redirect_url, digest, desc)
        if url:
            return empty(307, Location=url, Docker_Content_Digest=digest)
    raw = req.headers.get("range")
    span = parse_range(raw, size) if raw else None
    start, end = span if span is not None else (0, size - 1)
    length = max(end - start + 1, 0)
    reader = await state.run(repo.blobs.open, digest, desc)
    try:
        if start:
            await state.run(reader.seek, start)
    except BaseException:
        await state.run(reader.close)
        raise
    hdrs = _headers(digest) + [("Content-Length", str(length))]
    status = 200
    if span is not None:
        status = 206
        hdrs.append(("Content-Range", f"bytes {start}-{end}/{size}"))
    return Response(status, hdrs, state.stream_reader(reader, length))


def _from_fetch(req: Request, digest: str, size: int, fetch: Subscriber) -> Response:
    """A response streamed from an upstream fetch: whole, or one Range of it (206)."""
    raw = req.headers.get("range")
    try:
        span = parse_range(raw, size) if raw and size >= 0 else None
    except BaseException:
        fetch.detach()
        raise
    hdrs = _headers(digest)
    if span is None:
        if size >= 0:
            hdrs.append(("Content-Length", str(size)))
        return Response(200, hdrs, fetch.iterate())
    start, end = span
    hdrs += [("Content-Length", str(end - start + 1)),
             ("Content-Range", f"bytes {start}-{end}/{size}")]
    return Response(206, hdrs, fetch.iterate(start, end - start + 1))


async def delete(state: ServerState, req: Request, name: str, digest: str) -> Response:
    """DELETE: unlink from the repository (only when ``storage.delete.enabled``)."""
    if not state.config.delete_enabled:
        raise UnsupportedError("deletes are disabled (storage.delete.enabled)")
    repo = state.registry.repository(name)
    await state.run(repo.blobs.delete, digest)
    return empty(202, Docker_Content_Digest=digest)
