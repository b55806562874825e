"""Blob uploads whose whole state lives in the storage backend, so any process can resume them.

An upload is ``_uploads/<id>/``: ``startedat`` (its existence is the upload's), ``data`` (the
driver's resumable writer) and ``hashstates/sha256/<offset>`` (the SHA-256 state, saved at each
``close()`` in Go's format, older ones pruned). Resuming restores the state matching the writer's
offset and reads nothing back; only when none matches is the data re-read (or, where the backend
shows nothing before commit, hashed once at commit).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import functools
import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from typing import IO

from ..driver import FileWriter, StorageDriver, WriterState
from ..errors import (
    InvalidOffsetError,
    PathNotFoundError,
    StorageDriverError,
    WriterClosedError,
)
from . import paths as p
from .descriptor import Descriptor, blob_size, write_link
from .errors import (
    BlobUploadInvalidError,
    BlobUploadUnknownError,
    DigestInvalidError,
    SizeInvalidError,
)
from .fence import wait_until_safe
from .hashstate import HashStateError, ResumableSHA256, new_sha256
from .names import split_digest, validate_upload_id

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 20
#: Writes at least this large hash in parallel with the driver's write.
PARALLEL_HASH_MIN = 256 * 1024
STARTED_AT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_started_at(when: dt.datetime) -> bytes:
    """RFC 3339 UTC without fraction or newline (``2026-11-28T16:04:50Z``), as Distribution."""
    return when.astimezone(dt.UTC).strftime(STARTED_AT_FORMAT).encode("ascii")


def parse_started_at(raw: bytes) -> dt.datetime:
    """Parse a ``startedat`` (any RFC 3339 time); damaged → BlobUploadInvalidError."""
    try:
        when = dt.datetime.fromisoformat(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError) as exc:
        raise BlobUploadInvalidError(f"damaged startedat {raw[:40]!r}") from exc
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@functools.cache
def _hash_pool() -> concurrent.futures.ThreadPoolExecutor:
    """Threads that hash upload data while the caller's thread writes it."""
    workers = min(8, os.cpu_count() or 2)
    return concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="layerstore-hash")


def hash_stream(stream: IO[bytes], hasher: Callable[[bytes], None], limit: int | None) -> int:
    """Feed ``stream`` (up to ``limit`` bytes) to ``hasher`` in chunks; returns bytes read."""
    total = 0
    with stream:
        while limit is None or total < limit:
            want = READ_CHUNK if limit is None else min(READ_CHUNK, limit - total)
            chunk = stream.read(want)
            if not chunk:
                break
            hasher(chunk)
            total += len(chunk)
    return total


class BlobUpload:
    """One upload in progress: ``write``, ``close`` (resumable anywhere), ``commit``, ``cancel``."""

    def __init__(
        self,
        driver: StorageDriver,
        name: str,
        upload_id: str,
        started_at: dt.datetime,
        writer: FileWriter,
        hasher: ResumableSHA256 | None,
    ) -> None:
        self._driver = driver
        self._name = name
        self.id = upload_id
        self.started_at = started_at
        self._writer = writer
        #: None when no saved state matched the offset; the data is then hashed at commit.
        self._hasher = hasher
        self._done = False

    # -- life cycle -----------------------------------------------------------------------

    @classmethod
    def create(cls, driver: StorageDriver, name: str) -> BlobUpload:
        """Start an upload: ``startedat``, then a fresh data writer."""
        upload_id = str(uuid.uuid4())
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        driver.put_content(
            p.path_for(p.UploadStartedAtPath(name, upload_id)), format_started_at(now)
        )
        writer = driver.writer(p.path_for(p.UploadDataPath(name, upload_id)), append=False)
        return cls(driver, name, upload_id, now, writer, new_sha256())

    @classmethod
    def resume(cls, driver: StorageDriver, name: str, upload_id: str) -> BlobUpload:
        """Continue an upload any process closed; unknown id → BlobUploadUnknownError."""
        validate_upload_id(upload_id)
        try:
            raw = driver.get_content(p.path_for(p.UploadStartedAtPath(name, upload_id)))
        except PathNotFoundError:
            raise BlobUploadUnknownError(f"unknown upload {upload_id!r}") from None
        data_path = p.path_for(p.UploadDataPath(name, upload_id))
        try:
            writer = driver.writer(data_path, append=True)
        except PathNotFoundError:  # created, never closed with data: nothing to continue
            writer = driver.writer(data_path, append=False)
        hasher = _load_hash_state(driver, name, upload_id, writer.size)
        return cls(driver, name, upload_id, parse_started_at(raw), writer, hasher)

    @property
    def offset(self) -> int:
        """Bytes received so far, earlier sessions included."""
        return self._writer.size

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data`` to the upload; returns its length.

        Large writes hash in a worker thread while the driver writes (both release the GIL);
        the call returns only when both are done, so ``data`` may be reused afterwards.
        """
        self._check_usable("write")
        if self._writer.state is not WriterState.OPEN:
            raise BlobUploadInvalidError(f"upload {self.id} is closed; resume it to write")
        hasher, self._hasher = self._hasher, None  # unknown until both halves succeed
        with self._unless_finished_elsewhere():
            if hasher is None:
                return self._writer.write(data)
            if memoryview(data).nbytes < PARALLEL_HASH_MIN:
                taken = self._writer.write(data)
                hasher.update(data)
            else:
                hashed = _hash_pool().submit(hasher.update, data)
                try:
                    taken = self._writer.write(data)
                finally:
                    hashed.result()
        self._hasher = hasher
        return taken

    def close(self) -> None:
        """Persist the data and the hash state so that any process can resume; idempotent."""
        if self._done or self._writer.state is not WriterState.OPEN:
            return
        with self._unless_finished_elsewhere():
            self._writer.close()
            if self._hasher is not None:
                save_hash_state(self._driver, self._name, self.id, self._hasher)

    def cancel(self) -> None:
        """Discard the upload: abort the driver's write (multipart state too), remove the dir."""
        self._check_usable("cancel")
        self._done = True
        if self._writer.state is WriterState.OPEN:
            self._writer.cancel()
        abort_upload(self._driver, self._name, self.id)

    def commit(self, digest: str, size: int | None = None) -> Descriptor:
        """Verify and publish the blob in this repository; mismatch → cancelled + typed error.

        The named steps below run in order; each is safe to run again after a crash.
        """
        self._check_usable("commit")
        split_digest(digest)
        if size is not None and (not isinstance(size, int) or size < 0):
            raise SizeInvalidError(f"invalid size {size!r}")
        with self._unless_finished_elsewhere():
            self._finish_write()
        try:
            length = self._verify(digest, size)
        except (DigestInvalidError, SizeInvalidError):
            self._done = True
            self._remove_upload()
            raise
        self._move_into_place(digest, length)
        self._link(digest)
        self._settle(digest, length)
        self._remove_upload()
        self._done = True
        return Descriptor(digest, length)

    # -- commit steps ---------------------------------------------------------------------

    def _finish_write(self) -> None:
        """Commit the driver write so the data is readable. Twice: already committed, no-op."""
        if self._writer.state is WriterState.COMMITTED:
            return
        if self._writer.state is not WriterState.OPEN:
            self._writer = self._driver.writer(self._data_path, append=True)
        self._writer.commit()

    def _verify(self, digest: str, size: int | None) -> int:
        """Check size, then digest; returns the length. Pure check: running twice is harmless."""
        length = self._writer.size
        if size is not None and size != length:
            raise SizeInvalidError(
                f"upload has {length} bytes, {size} given", detail={"size": size}
            )
        if self._computed_digest(split_digest(digest)[0]) != digest:
            raise DigestInvalidError("content does not match the digest", detail={"digest": digest})
        return length

    def _computed_digest(self, alg: str) -> str:
        if alg == "sha256" and self._hasher is not None:
            return "sha256:" + self._hasher.hexdigest()
        log.info("upload %s: hashing the committed data (%s, no usable state)", self.id, alg)
        hasher = hashlib.new(alg)
        hash_stream(self._driver.reader(self._data_path), hasher.update, None)
        return f"{alg}:{hasher.hexdigest()}"

    def _move_into_place(self, digest: str, length: int) -> None:
        """Move the data to ``blobs/…/data``, or drop it when the blob exists.

        Twice (or racing another commit of the same blob): the blob exists, nothing moves; two
        racing moves both write the same verified bytes, so either result is right.
        """
        blob = p.path_for(p.BlobDataPath(digest))
        if blob_size(self._driver, blob) == length:
            return
        if length == 0:  # some backends keep no object for an empty write; write it outright
            self._driver.put_content(blob, b"")
            return
        try:
            self._driver.move(self._data_path, blob)
        except PathNotFoundError:
            if blob_size(self._driver, blob) != length:  # not a racing commit's success
                raise

    def _link(self, digest: str) -> None:
        """Link the blob into the repository. Twice: rewrites the same 71 bytes."""
        write_link(self._driver, p.path_for(p.LayerLinkPath(self._name, digest)), digest)

    def _settle(self, digest: str, length: int) -> None:
        """Wait out a sweep that may delete the blob we linked; put our copy and link back.

        Twice: the blob is in place, nothing moves. Our upload data is still there when the
        blob existed before (the move was skipped), so a collected blob is restored from it;
        the link is written again, as the sweep deletes the links of what it collects.
        """
        if not wait_until_safe(self._driver, [digest]):
            return
        blob = p.path_for(p.BlobDataPath(digest))
        if blob_size(self._driver, blob) != length:
            try:
                self._driver.move(self._data_path, blob)
            except PathNotFoundError:
                raise BlobUploadInvalidError(
                    f"blob {digest} was collected during commit; upload it again"
                ) from None
        self._link(digest)

    def _remove_upload(self) -> None:
        """Delete ``_uploads/<id>/`` entirely. Twice: finds nothing, does nothing."""
        try:
            self._driver.delete(p.path_for(p.UploadPath(self._name, self.id)))
        except PathNotFoundError:
            pass

    # -- helpers --------------------------------------------------------------------------

    @property
    def _data_path(self) -> str:
        return p.path_for(p.UploadDataPath(self._name, self.id))

    @contextlib.contextmanager
    def _unless_finished_elsewhere(self) -> Iterator[None]:
        """Report a driver failure as BLOB_UPLOAD_UNKNOWN when another process ended the upload.

        Two processes may hold the same upload (a retried request, a fleet); once one commits or
        cancels it, the other's writer fails in a driver-specific way. ``startedat`` being gone is
        what tells that apart from a real storage failure, which is re-raised unchanged.
        """
        try:
            yield
        except StorageDriverError as exc:
            try:
                self._driver.stat(p.path_for(p.UploadStartedAtPath(self._name, self.id)))
            except PathNotFoundError:
                self._done = True
                raise BlobUploadUnknownError(
                    f"upload {self.id} was finished or cancelled by another request"
                ) from exc
            raise

    def _check_usable(self, what: str) -> None:
        if self._done:
            raise BlobUploadUnknownError(f"cannot {what}: upload {self.id} is finished")


def save_hash_state(
    driver: StorageDriver, name: str, upload_id: str, hasher: ResumableSHA256
) -> None:
    """Save the state at ``hashstates/sha256/<offset>``, then prune the older ones."""
    offset = hasher.length
    driver.put_content(
        p.path_for(p.UploadHashStatePath(name, upload_id, "sha256", offset)), hasher.marshal()
    )
    try:
        saved = driver.list(p.path_for(p.UploadHashStatesPath(name, upload_id, "sha256")))
    except PathNotFoundError:
        return
    for path in saved:
        older = path.rsplit("/", 1)[-1]
        if older.isdigit() and int(older) < offset:
            try:
                driver.delete(path)
            except PathNotFoundError:
                pass


def _load_hash_state(
    driver: StorageDriver, name: str, upload_id: str, offset: int
) -> ResumableSHA256 | None:
    """Return the hash after ``offset`` bytes: saved state, else re-read, else None (at commit)."""
    path = p.path_for(p.UploadHashStatePath(name, upload_id, "sha256", offset))
    try:
        hasher = ResumableSHA256.unmarshal(driver.get_content(path))
        if hasher.length == offset:
            return hasher
        log.warning("upload %s: hash state %s has length %d", upload_id, path, hasher.length)
    except PathNotFoundError:
        pass
    except HashStateError as exc:
        log.warning("upload %s: ignoring hash state %s: %s", upload_id, path, exc)
    return _rehash(driver, p.path_for(p.UploadDataPath(name, upload_id)), offset)


def _rehash(driver: StorageDriver, data_path: str, offset: int) -> ResumableSHA256 | None:
    """Re-read the first ``offset`` uploaded bytes; None where the backend cannot show them."""
    hasher = new_sha256()
    if offset == 0:
        return hasher
    log.info("re-reading %d bytes of %s: no hash state matches", offset, data_path)
    try:
        got = hash_stream(driver.reader(data_path), hasher.update, offset)
    except (PathNotFoundError, InvalidOffsetError):
        return None
    return hasher if got == offset else None


def abort_upload(driver: StorageDriver, name: str, upload_id: str) -> None:
    """Cancel the driver write (aborting backend multipart state) and remove the upload dir."""
    try:
        driver.writer(p.path_for(p.UploadDataPath(name, upload_id)), append=True).cancel()
    except (PathNotFoundError, WriterClosedError):
        pass
    try:
        driver.delete(p.path_for(p.UploadPath(name, upload_id)))
    except PathNotFoundError:
        pass
