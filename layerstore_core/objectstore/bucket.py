"""The primitives a flat-namespace object store supplies: what a cloud driver implements.

A :class:`Bucket` speaks in object *keys* (full names in the bucket, root prefix included) and
knows nothing of contract paths, directories, readers or writers: the object-store driver in
:mod:`.driver` and the part writer in :mod:`.partwriter` derive all of those from these
primitives, once for every cloud. A bucket translates its SDK's errors into the contract's
(``PathNotFoundError`` for a missing key, ``InvalidOffsetError`` for a range past the end,
``StorageDriverError`` for the rest); the core stamps the driver name and path on them.

Writes larger than one request go through a *multipart upload*: ``start_upload`` →
``upload_part`` (parts numbered from 1, sized by :meth:`Bucket.part_size`) →
``complete_upload`` (which also takes the final, possibly short, part) or ``abort_upload``.
S3 maps this onto its multipart API, GCS onto one resumable-upload session (parts sent in
order), Azure onto staged blocks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import ClassVar, Protocol

from ..errors import UnsupportedMethodError

MiB = 2**20
#: Longest lifetime of a redirect URL any driver signs (S3 and GCS V4 signatures cap at 7 days).
MAX_REDIRECT_EXPIRY = 7 * 24 * 3600
#: Distribution's drivers sign redirect URLs for 20 minutes.
DEFAULT_REDIRECT_EXPIRY = 20 * 60
#: Infix of a segment object: ``<key>~seg~<name>`` (see :attr:`Bucket.segmented`).
SEGMENT_INFIX = "~seg~"


@dataclasses.dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object: its key, size, modification time and version tag (ETag or the like)."""

    key: str
    size: int
    modified: dt.datetime
    #: A tag that changes when the content does; copies and reads may be made conditional on it.
    etag: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a listing: objects, child prefixes (with a delimiter) and the next token."""

    objects: Sequence[ObjectInfo]
    #: With ``delimiter=True``: the prefixes (ending in ``/``) of the next level down.
    prefixes: Sequence[str] = ()
    #: Pass it back for the next page; None on the last one.
    token: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Part:
    """One uploaded part of a multipart upload, as the store needs it to complete the upload."""

    number: int
    size: int
    #: The store's receipt for the part (S3's ETag, Azure's block id; empty where none).
    etag: str = ""
    #: A checksum the store returned and wants back at completion (S3's CRC32), or empty.
    checksum: str = ""


class ByteStream(Protocol):
    """What :meth:`Bucket.get` returns: a response body read front to back, then closed."""

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class Bucket(ABC):
    """A flat-namespace object store: the primitives the core builds a driver from.

    Every method may be called from several threads at once. Retries are the SDK's, set up
    where the bucket builds its client; no method sleeps or loops on its own.
    """

    #: Most keys one :meth:`delete_many` call takes.
    delete_batch: ClassVar[int] = 1000
    #: Parts may differ in size (Azure blocks): ``close()`` then uploads its tail as a short
    #: part and resume finds the parts with :meth:`find_parts` instead of saved state.
    uneven_parts: ClassVar[bool] = False
    #: Largest part number a store takes (S3: 10,000; Azure: 50,000 blocks).
    max_parts: ClassVar[int] = 10_000
    #: Part numbers need only ascend (S3): completion takes any ascending subset of the
    #: parts, so a session continuing an upload sends under numbers it claimed (no rival
    #: shares them, :mod:`.partclaims`), and the final part takes :attr:`max_parts`.
    sparse_part_numbers: ClassVar[bool] = False
    #: Each writer session sends its parts into an object of its own, a *segment*
    #: (:meth:`start_segment`; GCS, whose one resumable session per write would keep a rival's
    #: bytes at an offset): the session seals it before its close claims its fence, the state
    #: lists the write's sealed segments, and commit composes them (:meth:`complete_segments`).
    segmented: ClassVar[bool] = False

    #: Parts uploaded at once by one writer (1: each part is sent before the next fills).
    max_concurrency: int = 1

    @abstractmethod
    def part_size(self, number: int) -> int:
        """How many bytes part ``number`` (from 1) holds when it is full."""

    # -- objects ------------------------------------------------------------------------------

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """The object at ``key``, or None when there is none (a missing key is not an error)."""

    @abstractmethod
    def get(self, key: str, start: int = 0) -> ByteStream:
        """Stream the object from byte ``start`` to its end.

        Missing → PathNotFoundError. A ``start`` at or past the end may raise
        InvalidOffsetError (as S3's 416 does); the core then tells "at the end" from "past it".
        """

    @abstractmethod
    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Store ``data`` as the whole object at ``key``, replacing it; retried by the SDK."""

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Store ``data`` at ``key`` only if no object is there (a conditional write).

        True when this call created it; of concurrent callers exactly one gets True.
        """
        raise UnsupportedMethodError("put_if_absent")

    @abstractmethod
    def list_page(self, prefix: str, *, delimiter: bool, token: str | None) -> ListPage:
        """One page of the objects whose keys start with ``prefix``, in key order.

        ``delimiter=True`` groups keys by the next ``/`` after the prefix into ``prefixes``.
        """

    @abstractmethod
    def delete_many(self, keys: Sequence[str]) -> None:
        """Delete up to :attr:`delete_batch` objects; keys already gone are fine."""

    @abstractmethod
    def copy(self, source: ObjectInfo, dest: str) -> None:
        """Copy ``source`` to key ``dest`` inside the store (server side), replacing ``dest``."""

    def copy_if_absent(self, source: ObjectInfo, dest: str) -> bool:
        """Copy ``source`` to ``dest`` only if no object is there; True when this call did.

        Stores with a conditional copy override this with no look first (S3: a multipart
        copy's CompleteMultipartUpload with ``If-None-Match``); this default looks first. True
        must mean that nothing was at ``dest`` (the registry's GC fence relies on it).
        """
        if self.head(dest) is not None:
            return False
        self.copy(source, dest)
        return True

    # -- multipart uploads -------------------------------------------------------------------

    @abstractmethod
    def start_upload(self, key: str) -> str:
        """Begin a multipart upload to ``key``; returns its id."""

    @abstractmethod
    def upload_part(self, key: str, upload_id: str, number: int, data: memoryview) -> Part:
        """Upload part ``number``: ``data`` starts at ``(number - 1) * part_size`` bytes.

        A part uploaded again replaces the earlier one (a resume after a crash does that).
        With :attr:`sparse_part_numbers` the number only orders the part.
        """

    @abstractmethod
    def complete_upload(
        self, key: str, upload_id: str, parts: Sequence[Part], last: memoryview
    ) -> str | None:
        """Finish the upload: ``parts`` in order, then ``last`` (may be empty) as the final part.

        Returns the object's ETag where the store answers it (a copy is conditioned on it).

        With :attr:`sparse_part_numbers` the final part is sent as number :attr:`max_parts`,
        which no writer session claims.

        The object is readable at ``key`` once this returns. An upload that is gone
        (completed or aborted) → PathNotFoundError.
        """

    @abstractmethod
    def abort_upload(self, key: str, upload_id: str) -> None:
        """Discard an unfinished upload and its parts; one already gone is fine."""

    def find_parts(self, key: str) -> tuple[str, list[Part]] | None:
        """An unfinished upload at ``key`` found in the store itself, and its parts, or None.

        Only stores with :attr:`uneven_parts` need it (their ``close()`` saves no state); the
        returned id is what the continuing writer uploads further parts under.
        """
        return None

    # -- segments (stores with :attr:`segmented`) --------------------------------------------

    def segment_key(self, key: str, name: str) -> str:
        """The object of segment ``name`` of the write to ``key``."""
        return f"{key}{SEGMENT_INFIX}{name}"

    def start_segment(self, key: str) -> tuple[str, str]:
        """A new segment of the write to ``key``: its name and the upload id of its parts.

        Parts go to it with :meth:`upload_part` at :meth:`segment_key`, numbered from 1.
        """
        raise UnsupportedMethodError("start_segment")

    def seal_segment(
        self, key: str, name: str, upload_id: str, parts: Sequence[Part], last: memoryview
    ) -> Part:
        """Finish a segment's upload (``last`` its final bytes): stored, never changed again.

        Returns the segment as the state lists it: ``etag`` is its name, ``size`` its length.
        """
        self.complete_upload(self.segment_key(key, name), upload_id, parts, last)
        return Part(0, sum(p.size for p in parts) + last.nbytes, name)

    def complete_segments(
        self, key: str, segments: Sequence[Part], last: memoryview, dest: str
    ) -> list[str]:
        """Store at ``dest`` the write's sealed ``segments`` in order, then ``last`` (may be empty).

        Returns the keys of objects made on the way, which the caller deletes with the segments.
        """
        raise UnsupportedMethodError("complete_segments")

    def segment_keys(self, key: str) -> list[str]:
        """Every segment object of the write to ``key`` (a loser's, a crashed session's too)."""
        keys: list[str] = []
        token: str | None = None
        while True:
            page = self.list_page(key + SEGMENT_INFIX, delimiter=False, token=token)
            keys.extend(o.key for o in page.objects)
            token = page.token
            if token is None:
                return keys

    def unfinished_keys(self, prefix: str) -> Iterator[str] | None:
        """Every key below ``prefix``, keys holding only an unfinished upload's parts included.

        For stores where such keys exist but listings hide them (Azure's staged-only blobs),
        so that deleting a directory removes them; None (the default): the flat listing shows
        every key there is to delete.
        """
        return None

    # -- the rest ----------------------------------------------------------------------------

    def store_id(self) -> str | None:
        """Who can :meth:`copy` between two buckets: equal ids name one store, None never.

        ``layerstore copy`` copies server side between drivers whose buckets share an id.
        """
        return None

    def signed_url(self, key: str, method: str) -> str | None:
        """A URL that lets a client ``method`` the object directly, or None where unsupported."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook: most buckets hold nothing to free
        """Release connections (not those of a client the user handed in)."""


def delete_in_batches(bucket: Bucket, keys: Sequence[str]) -> None:
    """Delete ``keys``, :attr:`Bucket.delete_batch` a request."""
    for start in range(0, len(keys), bucket.delete_batch):
        bucket.delete_many(keys[start : start + bucket.delete_batch])
