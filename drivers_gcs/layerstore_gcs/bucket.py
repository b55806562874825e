"""The object-store primitives on one GCS bucket, through google-cloud-storage's public API.

Every call carries an explicit timeout and the SDK's retry (``DEFAULT_RETRY`` bounded by
``retrydeadline``) and raises through :func:`.errors.translated`. A multipart upload is one
resumable session (:mod:`.session`): parts are sent in order, so ``max_concurrency`` is 1.
Writes are *segmented* (:attr:`.Bucket.segmented`): each writer session sends its parts into a
session of its own on a segment object, and commit composes the segments (a tree of composes
above :data:`COMPOSE_MAX` sources), because a session shared by rivals keeps the first bytes it
got at each offset, whoever sent them.

Deletes go one request per object (``Bucket.delete_blobs`` under the SDK's retry, a missing
object being fine): the SDK's JSON batch is public only as a context manager whose exit
discards the sub-responses, and with ``raise_exception=True`` it raises just the first failed
one (a 404 for an object already gone counts), so a batch cannot say which deletes failed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import storage  # type: ignore[import-untyped]  # ships no py.typed
from google.oauth2 import service_account

from layerstore_core.driver import EPOCH
from layerstore_core.errors import InvalidOffsetError
from layerstore_core.objectstore import Bucket, ByteStream, ListPage, ObjectInfo, Part

from .config import CHUNK_MULTIPLE, GCSParams
from .errors import translated
from .session import TOKEN_KEY, SessionClient, SessionId

#: Deletes in flight at once (the SDK's client is shared by threads, as its transfer_manager does).
DELETE_THREADS = 8
#: Objects per listing request.
PAGE_SIZE = 1000
#: Bytes per ranged request of a reader, at least: fewer round trips than tiny reads would give.
MIN_READ_SIZE = 4 * 2**20
#: GCS objects are at most 5 TiB: the most parts a session of the smallest chunks can take.
_MAX_PARTS = 5 * 2**40 // CHUNK_MULTIPLE
#: Most source objects one compose request takes.
COMPOSE_MAX = 32


class GCSBucket(Bucket):
    """One bucket; ``client`` is a ``google.cloud.storage.Client``, closed here if ``owned``."""

    max_parts: ClassVar[int] = _MAX_PARTS
    segmented: ClassVar[bool] = True

    def store_id(self) -> str:
        return f"gcs:{self.params.endpoint or 'storage.googleapis.com'}/{self.params.bucket}"

    def __init__(
        self,
        client: Any,
        params: GCSParams,
        *,
        owned: bool,
        signer: service_account.Credentials | None = None,
        signing_endpoint: str | None = None,
    ) -> None:
        self.client = client
        self.bucket = client.bucket(params.bucket)
        self.params = params
        self.owned = owned
        self.signer = signer
        self.signing_endpoint = signing_endpoint
        self.timeout = params.timeout
        self.retry: Retry = storage.retry.DEFAULT_RETRY.with_timeout(params.retrydeadline)
        self.sessions = SessionClient(params.timeout, params.chunkretries)

    def part_size(self, number: int) -> int:
        return self.params.chunksize

    def close(self) -> None:
        self.sessions.close()
        if self.owned:
            self.client.close()

    # -- objects ------------------------------------------------------------------------------

    def head(self, key: str) -> ObjectInfo | None:
        blob = self._get_blob(key)
        if blob is None:
            return None
        return ObjectInfo(key, blob.size or 0, blob.updated or EPOCH, str(blob.generation))

    def _get_blob(self, key: str) -> Any:
        with translated():
            return self.bucket.get_blob(key, timeout=self.timeout, retry=self.retry)

    def get(self, key: str, start: int = 0) -> ByteStream:
        return _RangeStream(self, key, start)

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """One simple upload; retried, since writing the same bytes twice is harmless here."""
        with translated():
            self.bucket.blob(key).upload_from_string(
                data if isinstance(data, bytes) else bytes(data),
                content_type="application/octet-stream",
                timeout=self.timeout,
                retry=self.retry,
            )

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """One upload with ``ifGenerationMatch=0``: GCS answers 412 when the object exists.

        Retried by the SDK under that precondition (a retry of a create that landed gets 412
        too, and reads as "someone else's" — the safe side for a lease).
        """
        try:
            self.bucket.blob(key).upload_from_string(
                data,
                content_type="application/octet-stream",
                if_generation_match=0,
                timeout=self.timeout,
                retry=self.retry,
            )
        except gexc.PreconditionFailed:
            return False
        except Exception:
            with translated():
                raise
        return True

    def list_page(self, prefix: str, *, delimiter: bool, token: str | None) -> ListPage:
        with translated():
            listing = self.client.list_blobs(
                self.bucket,
                prefix=prefix,
                delimiter="/" if delimiter else None,
                page_size=PAGE_SIZE,
                page_token=token,
                timeout=self.timeout,
                retry=self.retry,
            )
            page = next(listing.pages)
            objects = [
                ObjectInfo(b.name, b.size or 0, b.updated or EPOCH, str(b.generation)) for b in page
            ]
            prefixes = sorted(getattr(page, "prefixes", ()))
        return ListPage(objects, prefixes, listing.next_page_token)

    def delete_many(self, keys: Sequence[str]) -> None:
        """One request per object, :data:`DELETE_THREADS` at a time (see the module docstring)."""
        with ThreadPoolExecutor(DELETE_THREADS, thread_name_prefix="layerstore-gcs-delete") as pool:
            for done in [
                pool.submit(self._delete, keys[i::DELETE_THREADS]) for i in range(DELETE_THREADS)
            ]:
                done.result()

    def _delete(self, keys: Sequence[str]) -> None:
        with translated():
            self.bucket.delete_blobs(
                list(keys), on_error=_ignore, timeout=self.timeout, retry=self.retry
            )

    def copy(self, source: ObjectInfo, dest: str) -> None:
        src = self.bucket.blob(source.key)
        dst = self.bucket.blob(dest)
        token: str | None = None
        with translated():
            while True:  # the rewrite protocol: large or cross-class objects take several calls
                token, _, _ = dst.rewrite(src, token=token, timeout=self.timeout, retry=self.retry)
                if token is None:
                    return

    # -- multipart uploads: one resumable session ------------------------------------------

    def start_upload(self, key: str) -> str:
        return self._start_session(key, SessionId.new_token())

    def _start_session(self, key: str, token: str) -> str:
        blob = self.bucket.blob(key)
        blob.metadata = {TOKEN_KEY: token}
        with translated():
            uri: str = blob.create_resumable_upload_session(
                content_type="application/octet-stream", timeout=self.timeout, retry=self.retry
            )
        return SessionId.new(uri, token).encode()

    def upload_part(self, key: str, upload_id: str, number: int, data: memoryview) -> Part:
        session = SessionId.decode(upload_id, None)
        offset = (number - 1) * self.params.chunksize
        self.sessions.send(session, offset, data, None, lambda: False, None)
        return Part(number, data.nbytes)

    def complete_upload(
        self, key: str, upload_id: str, parts: Sequence[Part], last: memoryview
    ) -> None:
        session = SessionId.decode(upload_id, None)
        offset = sum(p.size for p in parts)
        total = offset + last.nbytes

        def finished() -> bool:
            blob = self._get_blob(key)
            meta = (blob.metadata or {}) if blob is not None else {}
            return blob is not None and blob.size == total and meta.get(TOKEN_KEY) == session.token

        self.sessions.send(session, offset, last, total, finished, None)

    def abort_upload(self, key: str, upload_id: str) -> None:
        self.sessions.cancel(SessionId.decode(upload_id, None), None)

    # -- segments: a session's own object, composed at commit -------------------------------

    def start_segment(self, key: str) -> tuple[str, str]:
        name = SessionId.new_token()
        return name, self._start_session(self.segment_key(key, name), name)

    def complete_segments(
        self, key: str, segments: Sequence[Part], last: memoryview, dest: str
    ) -> list[str]:
        """Compose the write's segments (and ``last``, stored as one more) at ``dest``.

        Above :data:`COMPOSE_MAX` sources, groups of them are composed into intermediate
        segment objects first; those and ``last``'s object are returned for deletion.
        """
        sources = [self.segment_key(key, s.etag) for s in segments]
        made: list[str] = []
        if last.nbytes or not sources:
            extra = self.segment_key(key, SessionId.new_token())
            self.put(extra, last)
            sources.append(extra)
            made.append(extra)
        while len(sources) > COMPOSE_MAX:
            groups = [sources[i : i + COMPOSE_MAX] for i in range(0, len(sources), COMPOSE_MAX)]
            sources = []
            for group in groups:
                step = self.segment_key(key, SessionId.new_token())
                self._compose(group, step)
                sources.append(step)
                made.append(step)
        self._compose(sources, dest)
        return made

    def _compose(self, sources: Sequence[str], dest: str) -> None:
        """One compose request; retried, since composing the same sources again is harmless."""
        blob = self.bucket.blob(dest)
        blob.content_type = "application/octet-stream"
        with translated():
            blob.compose(
                [self.bucket.blob(k) for k in sources], timeout=self.timeout, retry=self.retry
            )

    # -- redirects ------------------------------------------------------------------------------

    def signed_url(self, key: str, method: str) -> str | None:
        """A V4 URL when a service-account key is configured; else None."""
        if self.signer is None:
            return None
        with translated():
            url: str = self.bucket.blob(key).generate_signed_url(
                version="v4",
                expiration=dt.timedelta(seconds=self.params.redirectexpiry),
                method=method,
                credentials=self.signer,
                api_access_endpoint=self.signing_endpoint,
            )
        return url


def _ignore(blob: Any) -> None:
    """``delete_blobs``' callback for an object already gone: that is fine."""


class _RangeStream:
    """Reads one object generation by ranged requests of at least :data:`MIN_READ_SIZE`.

    Separate complete requests (not one long streamed response) keep a slow consumer from
    holding a connection — and, on the single-threaded emulator, the whole server. The first
    request is made at construction, so a missing object fails there (no HEAD first).
    """

    def __init__(self, owner: GCSBucket, key: str, start: int) -> None:
        self._owner = owner
        self._blob = owner.bucket.blob(key)
        self._pos = start
        self._block = max(owner.params.chunksize, MIN_READ_SIZE)
        self._buffer = b""
        self._used = 0
        self._eof = False
        try:
            self._fill(self._block)
        except InvalidOffsetError:
            if start:
                raise  # past the end, or at it: the core tells which
            self._eof = True  # a range on an empty object
        if start and not self._buffer:  # an emulator answers a range past the end with nothing
            raise InvalidOffsetError()
        if self._blob.generation is not None:  # later ranges: the same generation only
            self._blob = owner.bucket.blob(key, generation=self._blob.generation)

    def _fill(self, want: int | None) -> None:
        """Fetch ``want`` bytes (None: all the rest) from the current position."""
        end = None if want is None else self._pos + want - 1
        with translated():
            data: bytes = self._blob.download_as_bytes(
                start=self._pos,
                end=end,
                raw_download=True,
                checksum=None,
                timeout=self._owner.timeout,
                retry=self._owner.retry,
            )
        self._buffer, self._used = data, 0
        self._pos += len(data)
        self._eof = want is None or len(data) < want

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            rest = self._buffer[self._used :]
            self._buffer, self._used = b"", 0
            if self._eof:
                return rest
            more = self._fetch_rest()
            return rest + more if rest else more
        if self._used == len(self._buffer):
            if self._eof or not self._refill(max(size, self._block)):
                return b""
        piece = self._buffer[self._used : self._used + size]
        self._used += len(piece)
        return piece

    def _refill(self, want: int) -> bool:
        """Fetch the next block; False at the end of the object."""
        try:
            self._fill(want)
        except InvalidOffsetError:  # the previous block ended exactly at the end
            self._eof = True
            return False
        return bool(self._buffer)

    def _fetch_rest(self) -> bytes:
        try:
            self._fill(None)
        except InvalidOffsetError:
            return b""
        data, self._buffer = self._buffer, b""
        return data

    def close(self) -> None:
        self._buffer = b""
