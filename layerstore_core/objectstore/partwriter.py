"""The one part writer: buffering, part sizing, bounded background uploads, resumable close.

Every object-store driver writes through :class:`PartWriter`; the bucket supplies only the
multipart primitives (:mod:`.bucket`). How a write proceeds:

* Bytes fill a buffer of one part (allocated once per part, never grown). A full part is sent
  when more data arrives, so that ``commit()`` can hand the last full part to
  ``complete_upload`` as the final request. No multipart upload is started until a part is
  sent: a write that fits one part is stored by one ``put`` at commit.
* With ``bucket.max_concurrency`` N > 1, up to N parts upload in the background while the next
  fills (at most N + 1 parts of memory); with 1, each part is sent before the next fills. The
  first failure sticks: later calls raise it, and the write is continued by a new
  ``writer(path, append=True)``.
* ``close()`` waits for every part, then makes the write resumable anywhere. Stores whose parts
  must be uniform (S3, GCS) save a *state object* (upload id, part size, parts, and the tail of
  fewer bytes than a part) at ``state_key(key)``; stores that take a short part (Azure) upload
  the tail as one (starting the upload if no part was sent yet, so that a resume never finds
  an older write's parts instead) and find the parts again with ``bucket.find_parts``; only
  an empty close with no upload saves (empty) state there. ``release()`` with nothing
  written makes no request at all.
* A resume loads the state (one GET), or finds the parts, or — when only committed content is
  there — streams that content into a fresh upload (a registry never appends to a committed
  blob, the contract allows it).
* One writer per write: a session that wrote bytes claims the advance from the offset it
  opened at before it saves state (:mod:`.fence`, one conditional create); a rival that opened
  at the same offset loses with WriteConflictError. A resumed session that wrote nothing
  saves nothing.
* Rivals that each send whole parts must not replace each other's: parts no rival shares.
  Where part numbers may skip (:attr:`.Bucket.sparse_part_numbers`, S3), a session that
  continues another's multipart upload sends under part numbers it claimed
  (:mod:`.partclaims`), and completion lists only the winner's parts (S3 drops the unlisted
  ones). A session that starts its own upload shares nothing.
  Where a session cannot skip (:attr:`.Bucket.segmented`, GCS), each session sends its parts
  into a segment object of its own, seals it before it claims its fence, and the state lists
  the winner's segments; commit composes them, and deletes every segment of the write.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..driver import FileWriter, WriterState
from ..errors import PathNotFoundError, StorageDriverError
from . import fence, partclaims
from .bucket import ObjectInfo, delete_in_batches

if TYPE_CHECKING:
    from .bucket import Bucket, Part

MAGIC = b"layerstore-upload/1\n"
#: Suffix of an unfinished write's state object: ``<key>~state`` (see :mod:`.driver`).
STATE_SUFFIX = "~state"
#: Bytes copied from committed content per write() when an append continues it.
COPY_BLOCK = 4 * 2**20


def state_key(key: str) -> str:
    """The state object of an unfinished write to ``key`` (see :mod:`.driver`)."""
    return key + STATE_SUFFIX


@dataclasses.dataclass
class UploadState:
    """What a resume needs: the upload, its part size, its parts and the unsent tail."""

    upload_id: str | None
    part_size: int
    parts: list[Part]
    tail: bytes
    created: dt.datetime
    #: Offsets this write advanced from under a fence (:mod:`.fence`): deleted with the state.
    fences: list[int] = dataclasses.field(default_factory=list)
    #: Part-number ranges claimed under the upload (:mod:`.partclaims`): deleted with the state.
    claims: list[partclaims.Claim] = dataclasses.field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts) + len(self.tail)

    def encode(self) -> bytes:
        meta: dict[str, object] = {
            "upload": self.upload_id,
            "part_size": self.part_size,
            "parts": [[p.number, p.size, p.etag, p.checksum] for p in self.parts],
            "created": self.created.isoformat(),
            "fences": self.fences,
        }
        if self.claims:
            meta["claims"] = [list(c) for c in self.claims]
        return MAGIC + json.dumps(meta, separators=(",", ":")).encode() + b"\n" + self.tail

    @classmethod
    def decode(cls, raw: bytes, path: str) -> UploadState:
        from .bucket import Part

        try:
            if not raw.startswith(MAGIC):
                raise ValueError("not a layerstore upload state")
            line, _, tail = raw[len(MAGIC) :].partition(b"\n")
            meta = json.loads(line)
            parts = [Part(int(n), int(s), str(e), str(c)) for n, s, e, c in meta["parts"]]
            upload = meta["upload"]
            return cls(
                upload_id=None if upload is None else str(upload),
                part_size=int(meta["part_size"]),
                parts=parts,
                tail=tail,
                created=dt.datetime.fromisoformat(meta["created"]),
                fences=[int(f) for f in meta.get("fences", [])],
                claims=[(int(f), int(c)) for f, c in meta.get("claims", [])],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageDriverError(f"unreadable upload state: {exc}", path=path) from exc


def keeps_source(bucket: Bucket) -> bool:
    """Whether a commit leaves the write (key and state) until its path is deleted.

    So on stores whose writes keep a state object and a part-numbered upload (S3, inmemory):
    a retried commit resumes the state and commits again. Segmented stores (GCS) compose
    and drop their segments, and stores without state (Azure) have nothing to resume from.
    """
    return not bucket.segmented and not bucket.uneven_parts


def load_state(bucket: Bucket, key: str, path: str) -> UploadState | None:
    """The saved state of an unfinished write to ``key``, or None."""
    try:
        stream = bucket.get(state_key(key))
    except PathNotFoundError:
        return None
    try:
        raw = stream.read()
    finally:
        stream.close()
    return UploadState.decode(raw, path)


def side_keys(key: str, state: UploadState) -> list[str]:
    """The state object of a write and the fence and part-claim objects it lists."""
    fences = [fence.fence_key(key, f) for f in state.fences]
    return [state_key(key), *fences, *partclaims.claim_keys(key, state.claims)]


def discard(bucket: Bucket, key: str, state: UploadState) -> None:
    """Abort the upload a state describes and delete the state object (and its side objects)."""
    if state.upload_id is not None:
        bucket.abort_upload(key, state.upload_id)
    found = bucket.segment_keys(key) if bucket.segmented else []
    delete_in_batches(bucket, [*side_keys(key, state), *found])


class PartWriter(FileWriter):
    """A resumable multipart write; build it with :meth:`open` (see the module docstring)."""

    def __init__(
        self,
        bucket: Bucket,
        driver: str,
        path: str,
        key: str,
        state: UploadState | None = None,
    ) -> None:
        super().__init__(driver, path, state.size if state else 0)
        self._bucket = bucket
        self._key = key
        self._upload_id = state.upload_id if state else None
        self._part_size = state.part_size if state else bucket.part_size(1)
        parts = state.parts if state else []
        #: Sealed segments of the write (:attr:`.Bucket.segmented`: the state's parts).
        self._segments: list[Part] = list(parts) if bucket.segmented else []
        #: The segment this session sends its parts to, and those it sealed.
        self._segment: str | None = None
        self._sealed: list[str] = []
        self._parts: dict[int, Part] = {p.number: p for p in parts if not bucket.segmented}
        shared = state is not None and state.upload_id is not None  # rivals may continue it
        self._numbers = partclaims.PartNumbers(
            bucket, key, path, last_part=max(self._parts, default=0), shared=shared,
            claims=state.claims if state else (),
        )
        self._created = state.created if state else dt.datetime.now(dt.UTC)
        #: Whether a state object may exist for this write (commit and cancel remove it).
        self._saved = state is not None
        #: The write's fences (:mod:`.fence`); stores that keep no state object have none.
        self._fences = list(state.fences) if state else []
        self._fenced = not bucket.uneven_parts
        #: Whether this session started the multipart upload (a loser then aborts it).
        self._started_upload = False
        #: Set when this write continues committed content: cancel then removes that too.
        self._replaces_committed = False
        self._buffer = bytearray()
        self._fill = 0
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: collections.deque[Future[None]] = collections.deque()
        self._failure: BaseException | None = None
        if state and state.tail:
            self._take(memoryview(state.tail))

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def open(cls, bucket: Bucket, driver: str, path: str, key: str, append: bool) -> FileWriter:
        """A fresh write (discarding an unfinished one at ``key``) or the continuation of one."""
        if not append:
            state = None if bucket.uneven_parts else load_state(bucket, key, path)
            if state is not None:
                discard(bucket, key, state)
            if bucket.uneven_parts:
                fence.clear(bucket, key)
            return cls(bucket, driver, path, key)
        if bucket.uneven_parts:
            found = bucket.find_parts(key)
            if found is not None:
                upload_id, parts = found
                now = dt.datetime.now(dt.UTC)
                resumed = UploadState(upload_id, bucket.part_size(1), parts, b"", now)
                return cls(bucket, driver, path, key, resumed)
        state = load_state(bucket, key, path)
        if state is not None:
            return cls(bucket, driver, path, key, state)
        if bucket.head(key) is None:
            raise PathNotFoundError(path=path)
        return cls._continue_committed(bucket, driver, path, key)

    @classmethod
    def resume_or_start(cls, bucket: Bucket, driver: str, path: str, key: str) -> FileWriter:
        """:meth:`open` with ``append=True``, or a fresh write when nothing is there.

        The fresh write skips the discard look of ``append=False``: the append just found
        no state to discard.
        """
        try:
            return cls.open(bucket, driver, path, key, True)
        except PathNotFoundError:
            return cls(bucket, driver, path, key)

    def commit_at(self, bucket: Bucket, dest_key: str, if_absent: bool = False) -> bool | None:
        """Commit with the content at ``dest_key``; None (nothing done): commit, then move.

        ``if_absent``: only if no object is at ``dest_key`` (one conditional put, a conditional
        copy of the completed write, or a HEAD before composing); False when one is, with the
        writer still open — or, where the write was completed for the copy, committed in place
        as after ``commit()``.

        Where the store keeps the write's state (:func:`keeps_source`: S3, inmemory) the
        write stays at its key until its path is deleted: one put at ``dest_key`` when no
        multipart upload was started, else the upload completed in place and copied (its
        size is known: no HEAD), so a commit interrupted after this is redone from the
        state. Segments (GCS) are composed at ``dest_key``, and nothing of the write is
        left, as after a move; a multipart write on Azure is committed and moved.
        """
        segmented = self._has_segments()
        keeps = keeps_source(self._bucket)
        if self.state is not WriterState.OPEN or bucket is not self._bucket:
            return None
        if self._replaces_committed or (self._upload_id is not None and not segmented
                                        and not keeps):
            return None
        self._drain(0)
        last = memoryview(self._buffer)[: self._fill]
        single = self._upload_id is None and not segmented
        if if_absent and single:
            if not self._bucket.put_if_absent(dest_key, bytes(last)):
                return False
        elif if_absent and not keeps and self._bucket.head(dest_key) is not None:
            return False
        if keeps:
            if not single:
                source = self._complete(last)
                if not if_absent:
                    self._bucket.copy(source, dest_key)
                elif not self._bucket.copy_if_absent(source, dest_key):
                    self._end_commit(self._side_keys() if self._saved else [])
                    self.state = WriterState.COMMITTED
                    return False
            elif not if_absent:
                self._bucket.put(dest_key, last)
            doomed = self._side_keys()[1:] if self._saved else []  # fences, claims
        else:
            doomed = self._compose_at(dest_key, last) if segmented else []
            if not segmented and not if_absent:
                self._bucket.put(dest_key, last)
            doomed += [*self._side_keys(), self._key] if self._saved else [self._key]
        self._end_commit(doomed)
        self.state = WriterState.COMMITTED
        return True

    def _end_commit(self, doomed: list[str], clear_fences: bool = False) -> None:
        """Delete what the committed write no longer needs; let go of the buffer and threads."""
        if doomed:
            delete_in_batches(self._bucket, doomed)
        if clear_fences:
            fence.clear(self._bucket, self._key)
        self._shutdown()
        self._buffer, self._fill = bytearray(), 0

    def _complete(self, last: memoryview) -> ObjectInfo:
        """Complete the multipart upload at the key; one an earlier commit completed is fine.

        A commit that keeps its state (:func:`keeps_source`) and was interrupted after the
        completion finds the upload gone and the object in place with the write's size.
        """
        assert self._upload_id is not None
        parts = self._ordered_parts()
        try:
            etag = self._bucket.complete_upload(self._key, self._upload_id, parts, last)
        except PathNotFoundError:
            info = self._bucket.head(self._key)
            if info is None or info.size != self._size:
                raise
            return info
        return ObjectInfo(self._key, self._size, dt.datetime.now(dt.UTC), etag)

    @classmethod
    def _continue_committed(cls, bucket: Bucket, driver: str, path: str, key: str) -> PartWriter:
        """Stream committed content into a new write, which replaces it at commit."""
        writer = cls(bucket, driver, path, key)
        writer._replaces_committed = True
        stream = bucket.get(key)
        try:
            while block := stream.read(COPY_BLOCK):
                writer._write(memoryview(block))
                writer._size += len(block)
        finally:
            stream.close()
        return writer

    # -- hooks -------------------------------------------------------------------------------

    def _write(self, data: memoryview) -> None:
        self._check_failure()
        self._take(data)

    def _close(self) -> None:
        try:
            if self._fill == len(self._buffer) and self._fill:
                self._send_part()  # a full part: nothing to keep aside
            self._drain(0)  # every full part is stored before the claim and the state name it
            if self._bucket.uneven_parts and (self._upload_id is not None or self._fill):
                self._claim_tail()
                if self._fill:  # the tail as a short part, starting the upload if need be
                    self._send_part()
                self._drain(0)
                if self._saved:  # state from an empty close: the parts now say it all
                    self._bucket.delete_many([state_key(self._key)])
                    self._saved = False
                return
            self._save_state()
        finally:
            self._shutdown()

    def _commit(self) -> None:
        """Finish the upload; on failure the writer stays open and commit() may be retried."""
        self._drain(0)
        last = memoryview(self._buffer)[: self._fill]
        doomed = []
        if self._has_segments():
            doomed = self._compose_at(self._key, last)
        elif self._upload_id is None:
            self._bucket.put(self._key, last)
        else:
            self._complete(last)
        if self._saved:
            doomed += self._side_keys()
        self._end_commit(doomed, clear_fences=self._bucket.uneven_parts)

    def _cancel(self) -> None:
        self._buffer, self._fill = bytearray(), 0
        for future in self._inflight:
            future.cancel()
        self._shutdown()
        if self._upload_id is not None:
            self._bucket.abort_upload(self._part_key(), self._upload_id)
        doomed = self._side_keys() if self._saved else []
        if self._bucket.segmented:  # sealed ones, and any a loser or a crash left
            doomed += self._bucket.segment_keys(self._key)
        if self._replaces_committed:
            doomed.append(self._key)
        if doomed:
            delete_in_batches(self._bucket, doomed)
        if self._bucket.uneven_parts:
            fence.clear(self._bucket, self._key)

    def _release(self) -> None:
        self._buffer, self._fill = bytearray(), 0
        self._shutdown()

    # -- buffering and parts -----------------------------------------------------------------

    def _part_capacity(self) -> int:
        if self._bucket.uneven_parts:
            return self._bucket.part_size(self._numbers.upcoming)
        return self._part_size

    def _take(self, data: memoryview) -> None:
        pos = 0
        while pos < data.nbytes:
            if self._fill and self._fill == len(self._buffer):
                self._send_part()  # more data shows the full part is not the last
            if not self._buffer:
                self._buffer = bytearray(self._part_capacity())
            n = min(len(self._buffer) - self._fill, data.nbytes - pos)
            self._buffer[self._fill : self._fill + n] = data[pos : pos + n]
            self._fill += n
            pos += n

    def _send_part(self) -> None:
        number = self._numbers.take()
        if self._upload_id is None and self._bucket.segmented:
            self._segment, self._upload_id = self._bucket.start_segment(self._key)
            self._started_upload = True
        if self._upload_id is None:
            self._upload_id = self._bucket.start_upload(self._key)
            self._started_upload = True
        data = memoryview(self._buffer)[: self._fill]
        self._buffer, self._fill = bytearray(), 0
        if self._bucket.max_concurrency <= 1:
            self._upload(number, data)
            return
        self._drain(self._bucket.max_concurrency - 1)
        if self._pool is None:
            workers = self._bucket.max_concurrency
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="layerstore-part")
        self._inflight.append(self._pool.submit(self._upload, number, data))

    def _upload(self, number: int, data: memoryview) -> None:
        upload_id = self._upload_id
        assert upload_id is not None
        self._parts[number] = self._bucket.upload_part(self._part_key(), upload_id, number, data)

    def _part_key(self) -> str:
        """Where this session's parts go: its segment, or the write's key."""
        if self._segment is None:
            return self._key
        return self._bucket.segment_key(self._key, self._segment)

    def _claim_tail(self) -> None:
        """Stores without state: claim the advance from our offset before staging the tail.

        The fence holds the tail part itself, so a loser that finds the parts still ending at
        our offset stages it for a winner that died in between (see :mod:`.fence`).
        """
        if self._size == self._opened_at:
            return
        if self._upload_id is None:
            self._upload_id = self._bucket.start_upload(self._key)
        tail = bytes(memoryview(self._buffer)[: self._fill])
        raw = fence.encode_part(self._upload_id, self._numbers.upcoming, tail)
        if fence.claim(self._bucket, self._key, self._opened_at, raw):
            return
        self._buffer, self._fill = bytearray(), 0
        won = fence.read_fence(self._bucket, self._key, self._opened_at)
        found = self._bucket.find_parts(self._key)
        at = sum(p.size for p in found[1]) if found is not None else 0
        if won is not None and at == self._opened_at:
            upload_id, number, data = fence.decode_part(won, self.path)
            if data:
                self._bucket.upload_part(self._key, upload_id, number, memoryview(data))
        raise fence.conflict(self.path, self._opened_at)

    def _ordered_parts(self) -> list[Part]:
        """The parts of this write in order (numbers may skip, see :mod:`.partclaims`)."""
        return [self._parts[n] for n in sorted(self._parts)]

    def _side_keys(self) -> list[str]:
        fences = [fence.fence_key(self._key, f) for f in self._fences]
        claims = partclaims.claim_keys(self._key, self._numbers.claims)
        return [state_key(self._key), *fences, *claims]

    def _save_state(self) -> None:
        """Save the state; a resumed session claims its advance first (see :mod:`.fence`)."""
        wrote = self._size != self._opened_at
        if self._saved and not wrote:
            return  # nothing new: the saved state says it all, and a rival's must not be undone
        fenced = self._fenced and wrote  # an empty fresh write saves empty state, unfenced
        # A write that found no state claims offset 0 by creating the state object itself.
        first = fenced and not self._saved and self._opened_at == 0
        parts, upload_id = self._ordered_parts(), self._upload_id
        if self._bucket.segmented:  # sealed before the fence, which lists it
            self._seal(memoryview(b""))
            parts, upload_id = list(self._segments), None
        tail = bytes(memoryview(self._buffer)[: self._fill])
        fences = self._fences
        if fenced and not first and self._opened_at not in fences:
            fences = [*fences, self._opened_at]
        state = UploadState(upload_id, self._part_size, parts, tail, self._created, fences,
                            list(self._numbers.claims))
        raw = state.encode()
        if first:
            if not fence.claim_key(self._bucket, state_key(self._key), raw):
                self._lost()
        elif fenced and not fence.claim(self._bucket, self._key, self._opened_at, raw):
            self._lost()
        else:
            self._bucket.put(state_key(self._key), raw)
        self._fences = fences
        self._saved = True

    def _lost(self) -> None:
        """A rival advanced from our offset first: keep its state, drop ours, raise.

        If the state object still shows our offset, the winner may have died between its fence
        and its state write: the state object is rolled forward to the fence's state.
        """
        offset = self._opened_at
        if self._started_upload and self._upload_id is not None:  # ours alone (S3)
            self._bucket.abort_upload(self._key, self._upload_id)
        if self._sealed:  # segments no state lists
            self._bucket.delete_many([self._bucket.segment_key(self._key, n) for n in self._sealed])
        raw = fence.read_fence(self._bucket, self._key, offset)
        if raw is not None:
            won = UploadState.decode(raw, self.path)
            current = load_state(self._bucket, self._key, self.path)
            if current is not None and current.size == offset and won.size > offset:
                self._bucket.put(state_key(self._key), raw)
        self._saved = False  # the state object is the winner's: cancel must not touch it
        raise fence.conflict(self.path, offset)

    # -- segments (Bucket.segmented) ---------------------------------------------------------

    def _has_segments(self) -> bool:
        return self._bucket.segmented and (bool(self._segments) or self._upload_id is not None)

    def _seal(self, last: memoryview) -> None:
        """Finish this session's segment, ``last`` its final bytes, and list it."""
        if self._segment is None or self._upload_id is None:
            return
        sealed = self._bucket.seal_segment(
            self._key, self._segment, self._upload_id, self._ordered_parts(), last
        )
        self._segments.append(dataclasses.replace(sealed, number=len(self._segments) + 1))
        self._sealed.append(self._segment)
        self._segment, self._upload_id, self._parts = None, None, {}
        self._numbers = partclaims.PartNumbers(self._bucket, self._key, self.path)

    def _compose_at(self, dest: str, last: memoryview) -> list[str]:
        """Compose the write's segments, then ``last``, at ``dest``; the keys left to delete.

        Those are every segment of the write (listed where a state was saved: rivals that lost
        and crashed sessions may have left theirs) and what composing made on the way.
        """
        if self._upload_id is not None:
            self._seal(last)
            last = memoryview(b"")
        made = self._bucket.complete_segments(self._key, self._segments, last, dest)
        ours = [self._bucket.segment_key(self._key, s.etag) for s in self._segments]
        found = self._bucket.segment_keys(self._key) if self._saved else []
        return list(dict.fromkeys([*made, *ours, *found]))

    # -- background uploads ------------------------------------------------------------------

    def _drain(self, keep: int) -> None:
        """Wait until at most ``keep`` parts are in flight; the first failure sticks."""
        while len(self._inflight) > keep:
            try:
                self._inflight.popleft().result()
            except BaseException as exc:
                self._failure = exc
                raise

    def _check_failure(self) -> None:
        if self._failure is not None:
            raise StorageDriverError(
                "an earlier part failed to upload; resume with writer(path, append=True)",
                path=self.path,
            ) from self._failure

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._inflight.clear()


def parts_in_order(parts: Sequence[Part]) -> list[Part]:
    """Parts 1..k with no gap (later ones are strays of a crashed session)."""
    by_number = {p.number: p for p in parts}
    run: list[Part] = []
    while len(run) + 1 in by_number:
        run.append(by_number[len(run) + 1])
    return run
