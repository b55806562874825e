"""The S3 writer: one multipart upload with uniform parts, resumable from any process.

Every non-final part is exactly the part size (``chunksize``; R2 and others reject uneven parts).
Bytes short of a full part stay in one preallocated part-sized buffer. With ``maxconcurrency``
1 (the default) a full part uploads inside ``write()`` and the buffer is reused: a writer holds
one part of memory. With N > 1, up to N full parts upload in background threads while a fresh
buffer fills (``write()`` waits when N are in flight): N + 1 parts of memory at most.

**The tail.** S3 rejects non-final parts under 5 MiB, so ``close()`` cannot upload the bytes
short of a part as a part. Distribution completes the upload there and, on resume, starts a new
one that server-side copies the completed object back in — the object becomes visible before
commit and every resume re-copies everything. Instead, ``close()`` stores the tail as a *side
object* at ``<root>/~layerstore-s3/tails/<path>`` (a name outside the path grammar, so
``list``/``walk``/``stat`` never show it), with metadata naming the upload id and the byte
offset where the tail starts (= full parts × part size). ``writer(path, append=True)`` finds the
upload by key (ListMultipartUploads, newest first), takes the contiguous run of parts 1..k from
ListParts, and reads the tail back into the buffer only if its upload id matches and its offset
is exactly k × part size. The size is then k × part size + tail length; nothing is re-copied.

How each failure is absorbed:

- crash after a part is uploaded but before the new tail is written: the old tail's offset no
  longer equals k × part size (its bytes are inside the new part), so it is ignored — no byte
  is duplicated, and the resumed size is exactly what the parts hold;
- a background part failed while a later one succeeded: only the contiguous run 1..k counts;
  the stray later part is overwritten when resumed, or left out of CompleteMultipartUpload;
- ``close()`` fails while parts upload: the old tail still matches the untouched parts, so the
  resumed size is the last consistent prefix (never more than was stored);
- a tail left by another upload or a committed write: its upload id does not match;
- a commit that crashes after CompleteMultipartUpload leaves only a hidden stale tail, which
  ``writer(path)``, ``delete`` and later commits remove.
A commit of a closed upload is one CompleteMultipartUpload (the buffer goes up as the final,
short part), so the content appears atomically. A write that never reached a part is one
PutObject. ``append=True`` on committed content copies its whole parts into a new upload with
UploadPartCopy and reads only the remainder (under one part) into the buffer.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import closing
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from layerstore_core.driver import FileWriter
from layerstore_core.errors import PathNotFoundError, StorageDriverError

from .config import MAX_PARTS, MIN_PART_SIZE
from .errors import ERROR_TABLE, error_code, raise_translated, translated

if TYPE_CHECKING:
    from .driver import S3Driver

log = logging.getLogger(__name__)

#: Metadata keys on a tail object (S3 lowercases user metadata names).
META_UPLOAD = "layerstore-upload-id"
META_OFFSET = "layerstore-offset"
CONTENT_TYPE = "application/octet-stream"
#: Per-part checksum of our uploads, as boto3's TransferManager uses: S3 verifies each part and
#: combines them at complete (without one, S3 — and moto — compute a full-object CRC64NVME).
CHECKSUM_ALGORITHM: Final = "CRC32"


class S3Writer(FileWriter):
    """A resumable multipart upload; build it with :meth:`start` or :meth:`resume`."""

    def __init__(
        self,
        driver: S3Driver,
        path: str,
        *,
        part_size: int,
        upload_id: str | None = None,
        checksum: str | None = None,
        parts: dict[int, dict[str, Any]] | None = None,
        tail: bytes = b"",
    ) -> None:
        count = len(parts or {})
        super().__init__(driver.name, path, count * part_size + len(tail))
        self._driver = driver
        self._client = driver._client
        self._bucket = driver._bucket
        self._key = driver._key(path)
        self._tail_key = driver._tail_key(path)
        self._part_size = part_size
        self._upload_id = upload_id
        #: The upload's checksum algorithm (CRC32 for ours; None for uploads made without one).
        self._checksum = checksum
        #: Finished parts as CompleteMultipartUpload wants them (number, ETag, checksum).
        self._parts: dict[int, dict[str, Any]] = dict(parts or {})
        self._next_part = count + 1
        self._buffer = bytearray(part_size)
        self._fill = len(tail)
        self._buffer[: self._fill] = tail
        self._background = threading.Semaphore(driver.params.maxconcurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: set[Future[None]] = set()
        self._sealed = False

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def start(cls, driver: S3Driver, path: str) -> S3Writer:
        """Start afresh, discarding unfinished uploads at the path and their tail."""
        key = driver._key(path)
        for upload in driver._pending_uploads(key, exact=True):
            driver._abort(key, upload["UploadId"])
        with translated(path):
            driver._client.delete_object(Bucket=driver._bucket, Key=driver._tail_key(path))
        return cls(driver, path, part_size=driver.params.chunksize)

    @classmethod
    def resume(cls, driver: S3Driver, path: str) -> S3Writer:
        """Continue the newest unfinished upload at the path, else its committed content."""
        uploads = driver._pending_uploads(driver._key(path), exact=True)
        if uploads:
            newest = uploads[-1]
            return cls._resume_upload(driver, path, newest["UploadId"],
                                      newest.get("ChecksumAlgorithm"))
        return cls._continue_committed(driver, path)

    @classmethod
    def _resume_upload(
        cls, driver: S3Driver, path: str, upload_id: str, checksum: str | None
    ) -> S3Writer:
        parts, listed = _contiguous_parts(driver, path, upload_id)
        checksum = checksum or listed
        part_size = parts[0]["Size"] if parts else driver.params.chunksize
        uneven = [p["PartNumber"] for p in parts if p["Size"] != part_size]
        if uneven or part_size < MIN_PART_SIZE:
            raise StorageDriverError(
                f"upload {upload_id} has parts of uneven or too small size (parts {uneven[:5]}); "
                "it was not written by layerstore and cannot be continued",
                path=path,
            )
        done = {p["PartNumber"]: _completed(p["PartNumber"], p, checksum) for p in parts}
        tail = _read_tail(driver, path, upload_id, len(parts) * part_size, part_size)
        return cls(driver, path, part_size=part_size, upload_id=upload_id, checksum=checksum,
                   parts=done, tail=tail)

    @classmethod
    def _continue_committed(cls, driver: S3Driver, path: str) -> S3Writer:
        """Whole parts are copied server-side into a new upload; the remainder is read back."""
        head = driver._head(path)
        if head is None:
            raise PathNotFoundError(path=path)
        size, etag = head["ContentLength"], head["ETag"]
        part_size = driver.params.chunksize
        whole = size // part_size
        writer = cls(driver, path, part_size=part_size)
        source: Any = {"Bucket": driver._bucket, "Key": writer._key}
        for number in range(1, whole + 1):
            first = (number - 1) * part_size
            with translated(path):
                resp = driver._client.upload_part_copy(
                    Bucket=driver._bucket, Key=writer._key, UploadId=writer._ensure_upload(),
                    PartNumber=number, CopySource=source, CopySourceIfMatch=etag,
                    CopySourceRange=f"bytes={first}-{first + part_size - 1}",
                )
            result = dict(resp["CopyPartResult"])
            writer._parts[number] = _completed(number, result, writer._checksum)
        writer._next_part = whole + 1
        if size > whole * part_size:
            with translated(path):
                resp2 = driver._client.get_object(
                    Bucket=driver._bucket, Key=writer._key, IfMatch=etag,
                    Range=f"bytes={whole * part_size}-{size - 1}",
                )
                writer._take_tail(resp2["Body"].read())
            if whole:  # the upload exists now: make it resumable as it stands
                tail = bytes(memoryview(writer._buffer)[: writer._fill])
                writer._store_tail(writer._ensure_upload(), tail)
        writer._size = size
        return writer

    def _take_tail(self, data: bytes) -> None:
        self._buffer[: len(data)] = data
        self._fill = len(data)

    # -- hooks -------------------------------------------------------------------------------

    def _write(self, data: memoryview) -> None:
        if self._sealed:
            raise StorageDriverError("write after a failed commit", path=self.path)
        self._reap()
        pos = 0
        while pos < len(data):
            take = min(len(data) - pos, self._part_size - self._fill)
            self._buffer[self._fill : self._fill + take] = data[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == self._part_size:
                self._flush_full_part()

    def _close(self) -> None:
        try:
            self._drain()
            upload_id = self._ensure_upload()
            if self._fill:
                self._store_tail(upload_id, self._pending())
            else:
                self._delete_tail()
        finally:
            self._release()

    def _store_tail(self, upload_id: str, tail: Any) -> None:
        """Save the bytes short of a part beside the upload, tagged with where they start."""
        offset = (self._next_part - 1) * self._part_size
        with translated(self.path):
            self._client.put_object(
                Bucket=self._bucket, Key=self._tail_key, Body=tail,
                Metadata={META_UPLOAD: upload_id, META_OFFSET: str(offset)},
                ContentType=CONTENT_TYPE, **self._driver._object_args(storage_class=False),
            )

    def _commit(self) -> None:
        """Finish the upload; on failure the writer stays open and commit() may be retried."""
        if self._upload_id is None:
            self._put_whole()
        elif self._next_part == 1 and not self._fill:
            self._put_whole()  # empty: a crash before the abort leaves an equal empty write
            self._driver._abort(self._key, self._upload_id)
        else:
            if self._fill and not self._sealed:
                last = self._next_part  # goes up while background parts finish
                self._parts[last] = self._upload_part(last, self._pending())
                self._next_part += 1
                self._fill = 0
                self._sealed = True  # the short final part is up: no more writes
            self._drain()
            self._complete()
        if self._upload_id is not None:
            try:
                self._delete_tail()
            except StorageDriverError as exc:  # committed already; a stale tail is harmless
                log.warning("s3: could not remove the tail of %s after commit: %s", self.path, exc)
        self._release()

    def _cancel(self) -> None:
        try:
            wait(self._inflight)
            self._inflight.clear()
            if self._upload_id is not None:
                self._driver._abort(self._key, self._upload_id)
            self._delete_tail()
        finally:
            self._release()

    # -- parts -------------------------------------------------------------------------------

    def _pending(self) -> Any:
        """The buffered bytes short of a part, without a copy: the buffer is trimmed to them.

        Typed Any: botocore takes a bytearray body, its stubs only list bytes.
        """
        del self._buffer[self._fill :]
        return self._buffer

    def _ensure_upload(self) -> str:
        if self._upload_id is None:
            with translated(self.path):
                self._upload_id = self._client.create_multipart_upload(
                    Bucket=self._bucket, Key=self._key, ContentType=CONTENT_TYPE,
                    ChecksumAlgorithm=CHECKSUM_ALGORITHM, **self._driver._object_args(),
                )["UploadId"]
                self._checksum = CHECKSUM_ALGORITHM
        return self._upload_id

    def _flush_full_part(self) -> None:
        number = self._next_part
        if number > MAX_PARTS:
            raise StorageDriverError(
                f"more than {MAX_PARTS} parts of {self._part_size} bytes; raise chunksize",
                path=self.path,
            )
        self._next_part += 1
        self._ensure_upload()
        if self._driver.params.maxconcurrency == 1:
            self._parts[number] = self._upload_part(number, self._buffer)
        else:
            self._background.acquire()  # at most maxconcurrency parts in flight
            self._reap()
            full, self._buffer = self._buffer, bytearray(self._part_size)
            self._inflight.add(self._executor().submit(self._upload_in_background, number, full))
        self._fill = 0

    def _upload_in_background(self, number: int, data: bytearray) -> None:
        try:
            self._parts[number] = self._upload_part(number, data)
        finally:
            self._background.release()

    def _upload_part(self, number: int, data: Any) -> dict[str, Any]:
        """Upload one part (``data``: bytes or a bytearray, sent without a copy)."""
        extra: dict[str, Any] = {"ChecksumAlgorithm": self._checksum} if self._checksum else {}
        with translated(self.path):
            resp = self._client.upload_part(
                Bucket=self._bucket, Key=self._key, UploadId=self._ensure_upload(),
                PartNumber=number, Body=data, ContentLength=len(data), **extra,
            )
        return _completed(number, dict(resp), self._checksum)

    def _complete(self) -> None:
        parts: Any = [self._parts[n] for n in range(1, self._next_part)]
        with translated(self.path):
            self._client.complete_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._ensure_upload(),
                MultipartUpload={"Parts": parts},
            )

    def _put_whole(self) -> None:
        with translated(self.path):
            self._client.put_object(
                Bucket=self._bucket, Key=self._key, Body=self._pending(),
                ContentType=CONTENT_TYPE, **self._driver._object_args(),
            )

    def _delete_tail(self) -> None:
        with translated(self.path):
            self._client.delete_object(Bucket=self._bucket, Key=self._tail_key)

    # -- background uploads ------------------------------------------------------------------

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            workers = self._driver.params.maxconcurrency
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="s3-part")
        return self._pool

    def _reap(self) -> None:
        """Raise the first failure of a finished background upload."""
        for future in [f for f in self._inflight if f.done()]:
            self._inflight.discard(future)
            future.result()

    def _drain(self) -> None:
        """Wait for every background upload; raise the first failure."""
        wait(self._inflight)
        self._reap()

    def _release(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._buffer = bytearray()


def _contiguous_parts(
    driver: S3Driver, path: str, upload_id: str
) -> tuple[list[dict[str, Any]], str | None]:
    """Parts 1..k of the upload with no gap (later ones are strays), and its checksum algorithm."""
    parts: dict[int, dict[str, Any]] = {}
    checksum: str | None = None
    with translated(path):
        pages = driver._client.get_paginator("list_parts")
        key = driver._key(path)
        for page in pages.paginate(Bucket=driver._bucket, Key=key, UploadId=upload_id):
            checksum = page.get("ChecksumAlgorithm") or checksum
            for part in page.get("Parts", []):
                parts[part["PartNumber"]] = dict(part)
    run: list[dict[str, Any]] = []
    while len(run) + 1 in parts:
        run.append(parts[len(run) + 1])
    return run, checksum


def _completed(number: int, result: dict[str, Any], checksum: str | None) -> dict[str, Any]:
    """A part entry for CompleteMultipartUpload from an UploadPart/ListParts/copy result."""
    part: dict[str, Any] = {"PartNumber": number, "ETag": result["ETag"]}
    field = f"Checksum{checksum}" if checksum else None
    if field and result.get(field):
        part[field] = result[field]
    return part


def _read_tail(driver: S3Driver, path: str, upload_id: str, offset: int, part_size: int) -> bytes:
    """Read back the tail the last close() of this upload stored at ``offset``, if any."""
    try:
        resp = driver._client.get_object(Bucket=driver._bucket, Key=driver._tail_key(path))
    except ClientError as exc:
        if ERROR_TABLE.get(error_code(exc)) is PathNotFoundError:
            return b""
        raise_translated(exc, path)
    except BotoCoreError as exc:
        raise_translated(exc, path)
    with closing(resp["Body"]) as body:
        meta = resp.get("Metadata", {})
        length = resp["ContentLength"]
        if meta.get(META_UPLOAD) != upload_id or meta.get(META_OFFSET) != str(offset):
            return b""  # stale: its bytes are already inside a part, or another write's
        if length >= part_size:
            raise StorageDriverError(
                f"the saved tail ({length} bytes) does not fit a part of {part_size} bytes; "
                "was chunksize lowered while this upload was unfinished?",
                path=path,
            )
        with translated(path):
            data: bytes = body.read()
    if len(data) != length:
        raise StorageDriverError(f"tail object truncated ({len(data)} of {length})", path=path)
    return data
