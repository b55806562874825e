"""Blob uploads whose whole state lives in the storage backend, so any process can resume them.

An upload is ``_uploads/<id>/``: ``startedat`` (its existence is the upload's), ``data`` (the
driver's resumable writer) and ``hashstates/sha256/<offset>`` (the SHA-256 state, saved at each
``close()`` in Go's format; the one a session resumed from is then deleted). A caller that
carries the state itself (the HTTP API, in its signed upload token: ``close(carried=True)``)
saves the object only once the upload is :data:`HASH_STATE_AFTER` old, so a client that lost its
token can still resume a long upload without a re-read. Resuming restores the state matching
the writer's offset (the carried one, else the object) and reads nothing back; only when none
matches is the data re-read (or, where the backend shows nothing before commit, hashed once at
commit).

Only requests that change an upload write to the backend: starting one writes ``startedat``
(and, for a chunked upload where fresh writes are not fenced, an empty data write:
:meth:`BlobUpload.start_data`), and a session
that wrote nothing (a status request, a refused chunk) ends with ``FileWriter.release()``, which
makes no backend request.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import functools
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import IO

from .. import observe
from ..driver import FileWriter, StorageDriver, WriterState
from ..errors import (
    InvalidOffsetError,
    PartNumbersExhaustedError,
    PathNotFoundError,
    StorageDriverError,
    UnsupportedMethodError,
    WriteConflictError,
    WriterClosedError,
)
from . import paths as p
from .cache import BlobDescriptorCache
from .descriptor import Descriptor, blob_size, write_link
from .errors import (
    BlobUploadInvalidError,
    BlobUploadUnknownError,
    DigestInvalidError,
    RangeInvalidError,
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
#: Bytes compared at each end of a stored blob before an upload of the same digest is dropped.
STORED_CHECK = 64 * 1024
#: A close whose caller carries the hash state saves the hash-state object only once the
#: upload is this old (purge counts an upload this young as active: ``registry/purge.py``).
HASH_STATE_AFTER = dt.timedelta(minutes=5)
#: Clock skew allowed between processes when a commit decides no hash-state object was saved.
CLOCK_SKEW = dt.timedelta(minutes=1)


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
        writer: FileWriter | None,
        hasher: ResumableSHA256 | None,
        cache: BlobDescriptorCache | None = None,
    ) -> None:
        self._driver = driver
        self._name = name
        #: Told the descriptor a commit verified, so the ``stat`` that follows needs no HEAD.
        self._cache = cache
        self.id = upload_id
        self.started_at = started_at
        #: None until the first byte: the backend holds no data write for this upload yet.
        self._writer = writer
        #: The writer's size when this session began: unchanged at close → nothing to persist.
        self._session_start = writer.size if writer is not None else 0
        #: None when no saved state matched the offset; the data is then hashed at commit.
        self._hasher = hasher
        #: Offset of the saved hash state this session resumed from, deleted once a newer is saved.
        self._resumed_state: int | None = None
        #: Whether hash-state objects may exist (else a commit deletes its files by name).
        self._state_objects = writer is not None
        #: Whether the hasher is the state after ``offset`` bytes that the backend holds: a
        #: session's own writes count only once its close succeeded (a loser's never do).
        self._hash_settled = True
        #: Resumed with no data: another request may have started the data write since.
        self._done = False
        self._closed = False

    # -- life cycle -----------------------------------------------------------------------

    @classmethod
    def create(cls, driver: StorageDriver, name: str,
               cache: BlobDescriptorCache | None = None) -> BlobUpload:
        """Start an upload: ``startedat`` only; the data write starts with the first byte."""
        upload_id = str(uuid.uuid4())
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        driver.put_content(
            p.path_for(p.UploadStartedAtPath(name, upload_id)), format_started_at(now)
        )
        return cls(driver, name, upload_id, now, None, new_sha256(), cache)

    @classmethod
    def resume(
        cls, driver: StorageDriver, name: str, upload_id: str,
        started_at: dt.datetime | None = None, expect_data: bool = False,
        carried_state: bytes | None = None, expect_fresh: bool = False,
        cache: BlobDescriptorCache | None = None,
    ) -> BlobUpload:
        """Continue an upload any process closed; unknown id → BlobUploadUnknownError.

        ``started_at`` (from a signed upload token) saves reading ``startedat``; then the
        writer's state is what shows the upload exists, and only when it holds no data is
        ``startedat`` looked at. ``expect_data`` (the token's offset is not 0) says which to
        look at first, so that an unknown upload opens no writer in the common case.
        ``carried_state`` (the token's, see :meth:`carried_state`; ``b""`` from a caller that
        carries states but has none, at offset 0) is the hash state when its length is the
        writer's offset; it must come from a source the caller trusts (a signed token), as a
        commit verifies the digest with it. ``expect_fresh``: the caller is about to write and
        its signed token says no byte was written, so the driver may skip its look
        (:meth:`.StorageDriver.resume_writer`); a status or a cancel must look.
        """
        validate_upload_id(upload_id)
        started = p.path_for(p.UploadStartedAtPath(name, upload_id))
        known = False
        try:
            if started_at is None:
                started_at, known = parse_started_at(driver.get_content(started)), True
            elif not expect_data:
                driver.stat_file(started)
                known = True
        except PathNotFoundError:
            raise BlobUploadUnknownError(f"unknown upload {upload_id!r}") from None
        data = p.path_for(p.UploadDataPath(name, upload_id))
        # One look at the write's state, no second one; none for a first write where the
        # driver fences fresh writes (a rival's bytes make our close fail).
        writer = driver.resume_writer(data, expect_fresh=expect_fresh and not expect_data)
        if not known and writer.size == 0:
            try:
                driver.stat_file(started)
            except PathNotFoundError:  # finished elsewhere (a fresh write has stored nothing)
                writer.cancel()
                raise BlobUploadUnknownError(f"unknown upload {upload_id!r}") from None
        carried = _carried_hash(carried_state, writer.size)
        hasher: ResumableSHA256 | None = carried
        saved = False
        if carried is not None:
            observe.event("hashstate.resume")
        else:
            hasher, saved = _load_hash_state(driver, name, upload_id, writer.size)
        upload = cls(driver, name, upload_id, started_at, writer, hasher, cache)
        # An old upload's closes save objects: the one at this offset goes when a newer is saved.
        old_carried = carried is not None and not upload._young()
        upload._resumed_state = writer.size if saved or old_carried else None
        # A caller that carries the state (even none, at offset 0) of a young upload: no close
        # saved an object (see HASH_STATE_AFTER).
        carrier = carried_state is not None and (carried is not None or writer.size == 0)
        upload._state_objects = not carrier or not upload._young()
        return upload

    @property
    def offset(self) -> int:
        """Bytes received so far, earlier sessions included."""
        return self._writer.size if self._writer is not None else 0

    def write(self, data: bytes | bytearray | memoryview, uncached: bool = False) -> int:
        """Append ``data`` to the upload; returns its length.

        Large writes hash in a worker thread while the driver writes (both release the GIL);
        the call returns only when both are done, so ``data`` may be reused afterwards.
        ``uncached``: the bytes are not read back soon, the driver may bypass its cache
        (:attr:`.FileWriter.uncached`).
        """
        self._check_usable("write")
        if self._closed:
            raise BlobUploadInvalidError(f"upload {self.id} is closed; resume it to write")
        hasher, self._hasher = self._hasher, None  # unknown until both halves succeed
        self._hash_settled = False
        with self._unless_finished_elsewhere():
            if self._writer is None:
                self._writer = self._driver.writer(self._data_path, append=False)
            writer = self._writer
            writer.uncached = uncached
            if hasher is None:
                return writer.write(data)
            if memoryview(data).nbytes < PARALLEL_HASH_MIN:
                taken = writer.write(data)
                hasher.update(data)
            else:
                hashed = _hash_pool().submit(hasher.update, data)
                try:
                    taken = writer.write(data)
                finally:
                    hashed.result()
        self._hasher = hasher
        return taken

    def written_digest(self) -> str | None:
        """``sha256:…`` of the bytes written so far, when this session's hash knows it.

        Lets a caller that streams the bytes on (the pull-through cache) check them before
        ``commit``'s sync; None when the hash is unknown (resumed without a saved state).
        """
        return None if self._hasher is None else "sha256:" + self._hasher.hexdigest()

    def carried_state(self) -> bytes:
        """The hash state after :attr:`offset` bytes, for the caller to carry, or ``b""``.

        Only a state the backend's data matches: after a resume, or after a close that
        succeeded (a session whose close lost to a rival has hashed bytes that were not kept).
        Hand it back to :meth:`resume` as ``carried_state`` from a source that cannot be forged.
        """
        hasher = self._hasher
        if not self._hash_settled or hasher is None or hasher.length != self.offset:
            return b""
        return hasher.marshal()

    def start_data(self) -> None:
        """Open the data write empty, for an upload whose chunks any instance may receive.

        Every chunk then continues this write, and the driver lets one writer advance it from
        an offset (one writer per upload). It replaces a fresh write at the first chunk, which
        would discard a rival's first chunk. Not needed where the driver's fresh writes are
        fenced (:attr:`.StorageDriver.fresh_writes_fenced`): the first chunk's fresh write then
        claims offset 0 at its close.
        """
        self._driver.writer(self._data_path, append=False).close()

    def close(self, carried: bool = False) -> None:
        """Persist this session's data, then the hash state, so any process can resume.

        A session that wrote nothing (a status request, a refused chunk) has nothing to persist:
        its writer is released with no backend request. ``carried``: the caller keeps
        :meth:`carried_state` (in a signed token) for the next session, so the hash-state object
        is saved only once the upload is :data:`HASH_STATE_AFTER` old (for a client that loses
        its token; purge counts that long as activity). Idempotent.
        """
        writer, self._closed = self._writer, True
        if self._done or writer is None or writer.state is not WriterState.OPEN:
            return
        with self._unless_finished_elsewhere():
            if writer.size == self._session_start:
                writer.release()
                self._hash_settled = True  # no byte written, none hashed
                return
            writer.close()
            self._hash_settled = True
            if self._hasher is not None and not (carried and self._young()):
                save_hash_state(self._driver, self._name, self.id, self._hasher,
                                replaces=self._resumed_state)
                self._state_objects = True

    def _young(self, margin: dt.timedelta = dt.timedelta(0)) -> bool:
        """Whether the upload is younger than :data:`HASH_STATE_AFTER` (less ``margin``)."""
        age = dt.datetime.now(dt.UTC) - self.started_at
        return age < HASH_STATE_AFTER - margin

    def cancel(self) -> None:
        """Discard the upload: cancel this session's write (multipart state too), remove the dir.

        The write being cancelled is the one this session holds; with none (nothing was ever
        stored), removing the directory is all there is to do.
        """
        self._check_usable("cancel")
        self._done = True
        if self._writer is None or self._writer.state is WriterState.OPEN:
            if self._writer is not None:
                self._writer.cancel()
            self._remove_upload()
        else:  # this session closed its writer: a fresh one is what can abort the backend write
            abort_upload(self._driver, self._name, self.id)

    def commit(self, digest: str, size: int | None = None) -> Descriptor:
        """Verify and publish the blob in this repository; mismatch → cancelled + typed error.

        The named steps below run in order; each is safe to run again after a crash.
        """
        self._check_usable("commit")
        split_digest(digest)
        if size is not None and (not isinstance(size, int) or size < 0):
            raise SizeInvalidError(f"invalid size {size!r}")
        recovered = self._recovered_commit(digest, size)
        placed = False
        if recovered is not None:
            length = recovered
        else:
            length = self._verified(digest, size)
            placed = self._place(digest, length)
        pause_point("commit.moved")
        # New data under a new link needs no sweep check (DESIGN §11): no sweep can be about to
        # delete data that was absent a moment ago, nor a link its first walk did not see.
        linked_new = self._link(digest, new=placed)
        pause_point("commit.linked")
        if not linked_new:
            self._settle(digest, length)
        committed = Descriptor(digest, length)
        if self._cache is not None:  # verified, in place and linked: what a stat would find
            self._cache.remember(self._name, committed)
            if placed:
                self._cache.remember_written(committed)
        self._remove_committed()
        self._done = True
        observe.event("blob.commit")
        return committed

    # -- commit steps ---------------------------------------------------------------------

    def _recovered_commit(self, digest: str, size: int | None) -> int | None:
        """The length of a commit a crash interrupted after its move, or None.

        Only an upload left without data is looked at (one read, on that rare path): its
        marker must name this digest (and size, if given) and the blob must be in place with
        that length — the marker was written only after the data was verified, so linking
        needs nothing the client has not already proven.
        """
        if self.offset:
            return None
        try:
            raw = self._driver.get_content(self._commit_path)
        except PathNotFoundError:
            return None
        marked, _, length_text = raw.decode("ascii", "replace").partition(" ")
        if marked != digest or not length_text.isascii() or not length_text.isdigit():
            return None
        length = int(length_text)
        if size is not None and size != length:
            return None
        if blob_size(self._driver, p.path_for(p.BlobDataPath(digest))) != length:
            return None
        log.info("upload %s: finishing a commit interrupted after its move", self.id)
        return length

    @property
    def _commit_path(self) -> str:
        return p.path_for(p.UploadCommitPath(self._name, self.id))

    def _finish_write(self) -> None:
        """Commit the driver write in place so the data is readable. Twice: a no-op.

        An upload that never received a byte has no write to commit (its blob is empty).
        """
        writer = self._writer
        if writer is None or writer.state is WriterState.COMMITTED:
            return
        if self.offset == 0:
            if writer.state is WriterState.OPEN:
                writer.release()  # nothing was written: no request
            return
        with self._unless_finished_elsewhere():
            self._open_writer().commit()

    def _open_writer(self) -> FileWriter:
        """The session's writer, reopened where a failure closed it."""
        assert self._writer is not None
        if self._writer.state is not WriterState.OPEN:
            self._writer = self._driver.writer(self._data_path, append=True)
        return self._writer

    def _verified(self, digest: str, size: int | None) -> int:
        """Verify before placing; mismatch → the upload is cancelled and the error raised.

        With a SHA-256 state the data need not be readable for that; otherwise the write is
        committed in place first and read back.
        """
        if self.offset and not (split_digest(digest)[0] == "sha256" and self._hasher):
            self._finish_write()
        try:
            return self._verify(digest, size)
        except (DigestInvalidError, SizeInvalidError):
            self._done = True
            if self._writer is not None and self._writer.state is WriterState.OPEN:
                self._writer.cancel()
            self._remove_upload()
            raise

    def _verify(self, digest: str, size: int | None) -> int:
        """Check size, then digest; returns the length. Pure check: running twice is harmless."""
        length = self.offset
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
        if self.offset == 0:  # no byte was ever written
            return f"{alg}:{hashlib.new(alg).hexdigest()}"
        log.info("upload %s: hashing the committed data (%s, no usable state)", self.id, alg)
        hasher = hashlib.new(alg)
        hash_stream(self._driver.reader(self._data_path), hasher.update, None)
        return f"{alg}:{hasher.hexdigest()}"

    def _place(self, digest: str, length: int) -> bool:
        """Put the verified data at ``blobs/…/data``, or drop it when an intact copy is there.

        True when no data was there and this commit placed it (new data), False when a copy was
        found there (kept, or replaced when damaged).

        A stored blob is not trusted blindly (Distribution's is, so one corrupted copy fails
        every pull for good): when its size differs, or its first or last
        :data:`STORED_CHECK` bytes differ from the verified upload's, the upload replaces it.
        The write is committed straight at the blob's path where the driver can
        (``commit_to``), else committed in place and moved; where the driver keeps the write
        (no marker), with ``if_absent``, so that a new blob costs no look first (a conditional
        put on S3), and only a blob found there is compared. Twice (or racing another commit
        of the same blob): the blob exists, nothing moves; two racing placements both write
        the same verified bytes, so either result is right.
        """
        blob = p.path_for(p.BlobDataPath(digest))
        # No look first where no marker is needed either (a new blob is the common case): a
        # marker written before finding the blob there would outlive a finished upload.
        writer = self._writer
        if length and self._driver.commit_keeps_write and writer is not None \
                and writer.state is WriterState.OPEN:
            pause_point("commit.marked")
            with self._unless_finished_elsewhere():
                if self._driver.commit_to(writer, blob, if_absent=True):
                    return True
        stored = blob_size(self._driver, blob)
        if stored is not None:
            self._finish_write()  # compared with the upload's data, which must be readable
            if stored == length and (length == 0 or self._stored_copy_matches(blob, length)):
                return False
            log.warning("blob %s: the stored copy (%d bytes) is damaged; replacing it with the "
                        "verified upload", digest, stored)
        if length == 0:  # some backends keep no object for an empty write; write it outright
            self._finish_write()
            self._driver.put_content(blob, b"")
            return stored is None
        self._mark(digest, length)
        assert self._writer is not None
        with self._unless_finished_elsewhere():
            if self._writer.state is not WriterState.COMMITTED:
                self._driver.commit_to(self._open_writer(), blob)
                return stored is None
            try:
                self._move_committed(blob)
            except PathNotFoundError:
                if blob_size(self._driver, blob) != length:  # not a racing commit's success
                    raise
                return False
        return stored is None

    def _mark(self, digest: str, length: int) -> None:
        """Write the commit marker where the upload has no data once it is placed.

        The marker lets a retried commit finish; where the write stays
        (``commit_keeps_write``), the retry commits it again instead.
        """
        if not self._driver.commit_keeps_write:
            self._driver.put_content(self._commit_path, f"{digest} {length}".encode("ascii"))
        pause_point("commit.marked")

    def _move_committed(self, blob: str) -> None:
        """Move the data committed in place (and read back) to ``blob``, only if unchanged.

        A PATCH racing the commit may have appended to the data after it was verified; the
        driver then refuses the move (WriteConflictError, answered 416) rather than put
        unverified bytes in the blob.
        """
        writer = self._writer
        if writer is not None and writer.state is WriterState.COMMITTED:
            self._driver.move_committed(writer, blob)
        else:  # a recovered commit: this session committed nothing
            self._driver.move(self._data_path, blob)

    def _stored_copy_matches(self, blob: str, length: int) -> bool:
        """The cheap check: both ends of the stored blob equal the upload's.

        A change in the middle of a large blob gets past it; finding that is verify's and the
        scrub's job (a full re-hash on every re-push would cost what the re-push saved).
        """
        for offset in sorted({0, max(0, length - STORED_CHECK)}):
            try:
                if _read_at(self._driver, blob, offset) != _read_at(
                    self._driver, self._data_path, offset
                ):
                    return False
            except (PathNotFoundError, InvalidOffsetError):  # changed under us: re-place it
                return False
        return True

    def _link(self, digest: str, new: bool = False) -> bool:
        """Link the blob into the repository. Twice: rewrites the same 71 bytes.

        ``new``: create the link only where none is (True), else write it as usual (False).
        """
        path = p.path_for(p.LayerLinkPath(self._name, digest))
        if new:
            try:
                if self._driver.put_content_if_absent(path, digest.encode("ascii")):
                    return True
            except UnsupportedMethodError:
                pass
        write_link(self._driver, path, digest)
        return False

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
                with self._unless_finished_elsewhere():
                    self._move_committed(blob)
            except PathNotFoundError:
                raise BlobUploadInvalidError(
                    f"blob {digest} was collected during commit; upload it again"
                ) from None
        self._link(digest)

    def _remove_committed(self) -> None:
        """Delete what a committed upload left: its files by name, in one ``delete_many``.

        ``startedat`` goes first (the upload ends for every other request; what a crash leaves
        after it is a directory without a start, which purge removes), the commit marker last.
        Where a hash-state object may exist (a resume that carried no state, an upload old
        enough to save one, or a crash's leftover) the directory is deleted as a whole.
        """
        if self._state_objects or not self._young(CLOCK_SKEW):
            self._remove_upload()
            return
        self._driver.delete_many([
            p.path_for(p.UploadStartedAtPath(self._name, self.id)), self._data_path,
            self._commit_path,
        ])

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
                self._driver.stat_file(p.path_for(p.UploadStartedAtPath(self._name, self.id)))
            except PathNotFoundError:
                self._done = True
                raise BlobUploadUnknownError(
                    f"upload {self.id} was finished or cancelled by another request"
                ) from exc
            if isinstance(exc, WriteConflictError):  # one writer per upload: the rival won
                raise RangeInvalidError(
                    f"another request wrote to upload {self.id} at the same time; "
                    "ask its status and resume from its Range"
                ) from exc
            if isinstance(exc, PartNumbersExhaustedError):  # the client's chunks are too many
                raise BlobUploadInvalidError(
                    f"upload {self.id} cannot grow any further: {exc.message}"
                ) from exc
            raise

    def _check_usable(self, what: str) -> None:
        if self._done:
            raise BlobUploadUnknownError(f"cannot {what}: upload {self.id} is finished")


def _read_at(driver: StorageDriver, path: str, offset: int) -> bytes:
    """Up to :data:`STORED_CHECK` bytes of ``path`` from ``offset``."""
    with driver.reader(path, offset) as stream:
        return stream.read(STORED_CHECK)


def save_hash_state(
    driver: StorageDriver, name: str, upload_id: str, hasher: ResumableSHA256,
    *, replaces: int | None = None,
) -> None:
    """Save the state at ``hashstates/sha256/<offset>``, then delete the one at ``replaces``.

    Deleting the state the session resumed from (rather than listing for older ones) keeps
    one state per upload at one request; a state a crashed session left goes with the upload.
    """
    offset = hasher.length
    driver.put_content(
        p.path_for(p.UploadHashStatePath(name, upload_id, "sha256", offset)), hasher.marshal()
    )
    if replaces is not None and replaces < offset:  # by name: no listing, gone already is fine
        driver.delete_many([p.path_for(p.UploadHashStatePath(name, upload_id, "sha256", replaces))])


def _carried_hash(raw: bytes | None, offset: int) -> ResumableSHA256 | None:
    """The carried hash state when it is the state after ``offset`` bytes, else None."""
    if not raw or offset == 0:
        return None
    try:
        hasher = ResumableSHA256.unmarshal(raw)
    except HashStateError:
        return None
    return hasher if hasher.length == offset else None


def _load_hash_state(
    driver: StorageDriver, name: str, upload_id: str, offset: int
) -> tuple[ResumableSHA256 | None, bool]:
    """The hash after ``offset`` bytes, and whether it is a saved state.

    Else the data is re-read, or None: hashed at commit. At offset 0 there is nothing to load.
    """
    if offset == 0:
        return new_sha256(), False
    path = p.path_for(p.UploadHashStatePath(name, upload_id, "sha256", offset))
    try:
        hasher = ResumableSHA256.unmarshal(driver.get_content(path))
        if hasher.length == offset:
            observe.event("hashstate.resume")
            return hasher, True
        log.warning("upload %s: hash state %s has length %d", upload_id, path, hasher.length)
    except PathNotFoundError:
        pass
    except HashStateError as exc:
        log.warning("upload %s: ignoring hash state %s: %s", upload_id, path, exc)
    return _rehash(driver, p.path_for(p.UploadDataPath(name, upload_id)), offset), False


def _rehash(driver: StorageDriver, data_path: str, offset: int) -> ResumableSHA256 | None:
    """Re-read the first ``offset`` uploaded bytes; None where the backend cannot show them."""
    hasher = new_sha256()
    if offset == 0:
        return hasher
    log.info("re-reading %d bytes of %s: no hash state matches", offset, data_path)
    observe.event("hashstate.reread")
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


#: A test hook: ``LAYERSTORE_TEST_PAUSE_AT=<step>`` makes the process stop at that step of a
#: commit (writing the step's name to ``LAYERSTORE_TEST_PAUSE_FILE``) so a crash test can kill
#: it exactly there. Unset in production: one dictionary lookup per step.
PAUSE_ENV = "LAYERSTORE_TEST_PAUSE_AT"
PAUSE_FILE_ENV = "LAYERSTORE_TEST_PAUSE_FILE"


def pause_point(step: str) -> None:
    """Block forever at ``step`` when the crash-test hook names it (see :data:`PAUSE_ENV`)."""
    if os.environ.get(PAUSE_ENV) != step:
        return
    with open(os.environ[PAUSE_FILE_ENV], "w", encoding="ascii") as marker:
        marker.write(step)
    while True:  # the test SIGKILLs the process here
        time.sleep(3600)
