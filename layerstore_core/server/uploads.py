"""Blob upload routes: POST (start, monolithic, mount), PATCH, PUT, GET status, DELETE.

Every response that keeps an upload open carries a fresh signed state token in ``Location``; the
upload's real offset is always the backend's (the token's offset is informational), so a chunk
that does not start there gets 416 with the current ``Range`` and nothing is appended.
Read-only requests (GET status, a refused chunk) make no backend write: the resumed session
wrote nothing, so closing it only releases its writer. The token also carries the upload's hash
state, so a chunk saves no hash-state object (:meth:`BlobUpload.close` with ``carried=True``).
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import quote

from ..registry import BlobUpload
from ..registry.errors import (
    BlobUnknownError,
    BlobUploadInvalidError,
    DigestInvalidError,
    NameInvalidError,
    NameUnknownError,
    RangeInvalidError,
    SizeInvalidError,
)
from ..registry.names import validate_digest
from .http import Request, Response, empty, gather_quietly, parse_decimal
from .state import ServerState
from .tokens import InvalidTokenError, UploadState

_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?$")
#: A mount failing with one of these falls back to a fresh upload session.
_NO_MOUNT = (BlobUnknownError, NameUnknownError, NameInvalidError, DigestInvalidError)


def range_header(offset: int) -> str:
    """Distribution's upload ``Range``: ``0-<last byte>`` (``0-0`` when empty)."""
    return f"0-{max(offset - 1, 0)}"


def _location(state: ServerState, req: Request, name: str, upload: BlobUpload) -> str:
    token = state.signer.sign(
        UploadState(name=name, id=upload.id, offset=upload.offset,
                    started_at=str(upload.started_at), hash_state=upload.carried_state())
    )
    return state.config.urls.build(
        req, f"/v2/{name}/blobs/uploads/{upload.id}?_state={quote(token, safe='')}")


def _progress(
    state: ServerState, req: Request, name: str, upload: BlobUpload, status: int
) -> Response:
    return empty(
        status,
        Location=_location(state, req, name, upload),
        Range=range_header(upload.offset),
        Docker_Upload_UUID=upload.id,
    )


def _created(state: ServerState, req: Request, name: str, digest: str) -> Response:
    return empty(201, Location=state.config.urls.build(req, f"/v2/{name}/blobs/{digest}"),
                 Docker_Content_Digest=digest)


def parse_content_range(value: str) -> tuple[int, int]:
    """``start-end`` (inclusive), optionally with a ``bytes`` unit; else 416."""
    m = _CONTENT_RANGE.match(value.strip())
    first, last = (parse_decimal(m.group(1)), parse_decimal(m.group(2))) if m else (None, None)
    if first is None or last is None or first > last:
        raise RangeInvalidError("malformed Content-Range", detail=value[:100])
    return first, last


async def start(state: ServerState, req: Request, name: str) -> Response:
    """POST /v2/<name>/blobs/uploads/: mount, monolithic upload, or a new session."""
    repo = state.registry.repository(name)
    mount, source = req.arg("mount"), req.arg("from")
    if mount is not None and source is not None:
        try:
            await state.run(repo.blobs.mount, mount, source)
        except _NO_MOUNT:  # cannot mount: fall back to a fresh session, as the spec says
            pass
        else:
            await req.drain()
            return _created(state, req, name, mount)
    digest = req.arg("digest")
    if digest is not None:
        validate_digest(digest)  # before an upload exists that a bad digest would strand
    upload = await state.run(repo.blobs.create_upload)  # startedat only: no data write yet
    if digest is None:  # chunks may reach any instance: they all continue one data write
        if not state.registry.driver.fresh_writes_fenced:  # else the first chunk's close claims
            await state.run(upload.start_data)
        await req.drain()
        resp = _progress(state, req, name, upload, 202)
        return resp.header("OCI-Chunk-Min-Length", state.chunk_min_length)
    try:
        return await _finish(state, req, name, upload, digest)
    except BaseException:  # no Location was given, so no one could resume or cancel it
        await gather_quietly(state.run(upload.cancel))
        raise


async def _close_after_error(state: ServerState, upload: BlobUpload) -> None:
    """Persist what arrived before a failure; the failure, not this, is what gets reported."""
    try:
        await state.run(upload.close)
    except Exception:  # commit may already have cancelled it, or storage is what failed
        pass


async def _write_body(state: ServerState, req: Request, upload: BlobUpload) -> None:
    """Append the body, closing the upload (persisting what arrived) whatever happens."""
    try:
        await state.pump(req, upload.write)
    except BaseException:
        await _close_after_error(state, upload)
        raise


async def _finish(
    state: ServerState, req: Request, name: str, upload: BlobUpload, digest: str
) -> Response:
    if req.has_body:
        await _write_body(state, req, upload)
    try:
        committed = await state.run(upload.commit, digest)
    except BaseException:
        await _close_after_error(state, upload)
        raise
    return _created(state, req, name, committed.digest)


async def _resume(
    state: ServerState, req: Request, name: str, upload_id: str, writes: bool = False
) -> BlobUpload:
    """The upload the request's signed token names; ``writes``: the request sends bytes."""
    repo = state.registry.repository(name)
    token = req.arg("_state")
    if token is None:
        raise BlobUploadInvalidError("missing upload state (_state)")
    try:
        signed = state.signer.verify(token, name=name, upload_id=upload_id)
    except InvalidTokenError as exc:
        raise BlobUploadInvalidError(str(exc)) from None
    # The token's start time is the upload's (signed, and startedat never changes); its offset
    # only says whether data is likely there, which the backend then shows. A request that
    # writes at offset 0 need not look (a rival's first bytes make its close fail, 416); a
    # status must, as a client that lost such a race asks it where to resume.
    return await state.run(repo.blobs.resume_upload, upload_id, _started_at(signed),
                           signed.offset > 0, signed.hash_state, writes and signed.offset == 0)


def _started_at(signed: UploadState) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(signed.started_at)
    except ValueError:  # a token from before the field was parsed: read startedat instead
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


async def _check_range(
    state: ServerState, req: Request, name: str, upload: BlobUpload
) -> None:
    """Refuse (416) a ``Content-Range`` not starting at the offset or not matching the length."""
    raw = req.headers.get("content-range")
    if raw is None:
        return
    offset = upload.offset
    try:
        first, last = parse_content_range(raw)
        length = req.content_length
        if first != offset or (length is not None and length != last - first + 1):
            raise RangeInvalidError("chunk does not start at the upload's offset",
                                    detail={"offset": offset, "content_range": raw[:100]})
    except (RangeInvalidError, SizeInvalidError) as err:
        await state.run(upload.close, True)
        err.headers.update(
            Location=_location(state, req, name, upload), Range=range_header(offset),
            **{"Docker-Upload-UUID": upload.id},
        )
        await req.drain()
        raise


async def patch(state: ServerState, req: Request, name: str, upload_id: str) -> Response:
    """PATCH: append a chunk (with Content-Range) or a stream (without, chunked or not)."""
    upload = await _resume(state, req, name, upload_id, writes=True)
    await _check_range(state, req, name, upload)
    await _write_body(state, req, upload)
    await state.run(upload.close, True)  # the hash state rides in the Location's token
    return _progress(state, req, name, upload, 202)


async def put(state: ServerState, req: Request, name: str, upload_id: str) -> Response:
    """PUT ?digest=: optional final chunk, then verify and commit."""
    digest = req.arg("digest")
    if not digest:
        raise DigestInvalidError("the digest query parameter is required")
    validate_digest(digest)  # before any byte of the body lands in the upload
    upload = await _resume(state, req, name, upload_id, writes=req.has_body)
    if req.has_body:
        await _check_range(state, req, name, upload)
    return await _finish(state, req, name, upload, digest)


async def status(state: ServerState, req: Request, name: str, upload_id: str) -> Response:
    """GET: where the upload stands (204 + Range); no backend write (the writer is released)."""
    upload = await _resume(state, req, name, upload_id)
    await state.run(upload.close, True)
    return _progress(state, req, name, upload, 204)


async def cancel(state: ServerState, req: Request, name: str, upload_id: str) -> Response:
    """DELETE: abandon the upload, cancelling the write this request resumed (no second one)."""
    upload = await _resume(state, req, name, upload_id)
    await state.run(upload.cancel)
    return empty(204)
