"""A repository's view of the blob store: visible only through the repository's own links."""

from __future__ import annotations

import datetime as dt
import io
from typing import IO, TYPE_CHECKING

from ..driver import StorageDriver
from ..errors import PathNotFoundError
from . import paths as p
from .cache import BlobDescriptorCache
from .descriptor import Descriptor, blob_size, read_link, write_link
from .errors import BlobUnknownError
from .fence import wait_until_safe
from .names import validate_digest, validate_name
from .uploads import BlobUpload

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

#: The buffer of readers from ``open``; larger reads go straight to the driver.
READ_BUFFER = 64 * 1024


class BlobReader(io.RawIOBase):
    """A seekable reader of one blob; a seek reopens the driver's reader at the new offset.

    Reads stream from the driver: nothing holds the whole blob. Seeking past the end is allowed
    and reads nothing, as with files.
    """

    def __init__(self, driver: StorageDriver, path: str, size: int) -> None:
        super().__init__()
        self._driver = driver
        self._path = path
        self.size = size
        self._pos = 0
        self._stream: IO[bytes] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence!r}")
        target = base + offset
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        if target != self._pos:
            self._drop_stream()
            self._pos = target
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        self._check_open()
        if self._pos >= self.size or size == 0:
            return b""
        if self._stream is None:
            self._stream = self._driver.reader(self._path, self._pos)
        data = self._stream.read(-1 if size is None or size < 0 else size)
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Read into ``buffer`` straight from the driver's stream where it can (no bytes made)."""
        self._check_open()
        view = memoryview(buffer).cast("B")
        if self._pos >= self.size or not view.nbytes:
            return 0
        if self._stream is None:
            self._stream = self._driver.reader(self._path, self._pos)
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:
            n = int(readinto(view))
        else:
            data = self._stream.read(view.nbytes)
            n = len(data)
            view[:n] = data
        self._pos += n
        return n

    def close(self) -> None:
        self._drop_stream()
        super().close()

    def _drop_stream(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed blob reader")


class BlobStore:
    """Blobs of one repository: stat, open, redirect, upload, mount, delete (unlink)."""

    def __init__(
        self, driver: StorageDriver, name: str, cache: BlobDescriptorCache | None = None
    ) -> None:
        self._driver = driver
        self.name = name
        self._cache = cache

    def stat(self, digest: str) -> Descriptor:
        """Return the blob's descriptor; not linked here (or its data gone) → BlobUnknownError.

        A cache answers what it knows (see :mod:`.cache`); the rest comes from the storage.
        """
        validate_digest(digest)
        known, cached = self._cache.lookup(self.name, digest) if self._cache else (False, None)
        if known and cached is not None:
            return cached
        linked = read_link(self._driver, p.path_for(p.LayerLinkPath(self.name, digest)))
        size = None
        if linked == digest:
            size = (
                cached.size
                if cached is not None
                else blob_size(self._driver, p.path_for(p.BlobDataPath(digest)))
            )
        if size is None:
            raise BlobUnknownError(
                f"blob {digest} unknown to {self.name}", detail={"digest": digest}
            )
        desc = cached or Descriptor(digest, size)
        if self._cache is not None:
            self._cache.remember(self.name, desc)
        return desc

    def exists(self, digest: str) -> bool:
        """Whether this repository sees the blob."""
        try:
            self.stat(digest)
        except BlobUnknownError:
            return False
        return True

    def open(self, digest: str, known: Descriptor | None = None) -> io.BufferedReader:
        """Open a seekable streaming reader of the blob (a buffered :class:`BlobReader`).

        ``known``: what :meth:`stat` returned for it just now, which saves looking again.
        """
        desc = known if known is not None and known.digest == digest else self.stat(digest)
        raw = BlobReader(self._driver, p.path_for(p.BlobDataPath(digest)), desc.size)
        return io.BufferedReader(raw, buffer_size=READ_BUFFER)

    def redirect_url(self, digest: str, known: Descriptor | None = None) -> str | None:
        """Return a URL to fetch the blob from the backend directly, or None where unsupported.

        ``known``: what :meth:`stat` returned for it just now, which saves looking again.
        """
        if known is None or known.digest != digest:
            self.stat(digest)
        return self._driver.redirect_url(p.path_for(p.BlobDataPath(digest)))

    def create_upload(self) -> BlobUpload:
        """Start a new upload into this repository."""
        return BlobUpload.create(self._driver, self.name, self._cache)

    def resume_upload(
        self, upload_id: str, started_at: dt.datetime | None = None, expect_data: bool = False,
        carried_state: bytes | None = None, expect_fresh: bool = False,
    ) -> BlobUpload:
        """Continue an upload started by any process; unknown → BlobUploadUnknownError.

        ``started_at``, ``expect_data``, ``carried_state`` and ``expect_fresh``: what a signed
        upload token says (see :meth:`BlobUpload.resume`), which saves reading ``startedat``,
        the hash state and, for a first write, the write's state.
        """
        return BlobUpload.resume(self._driver, self.name, upload_id, started_at, expect_data,
                                 carried_state, expect_fresh, self._cache)

    def mount(self, digest: str, from_repository: str) -> Descriptor:
        """Link a blob that ``from_repository`` sees into this one; else BlobUnknownError."""
        validate_name(from_repository)
        desc = BlobStore(self._driver, from_repository, self._cache).stat(digest)
        link = p.path_for(p.LayerLinkPath(self.name, digest))
        write_link(self._driver, link, digest)
        data = p.path_for(p.BlobDataPath(digest))
        if wait_until_safe(self._driver, [digest]):  # a sweep ran: it may have collected it
            if blob_size(self._driver, data) is None:
                try:
                    self._driver.delete(link)
                except PathNotFoundError:
                    pass
                raise BlobUnknownError(f"blob {digest} was collected", detail={"digest": digest})
            write_link(self._driver, link, digest)
        if self._cache is not None:  # linked here just now
            self._cache.remember(self.name, desc)
        return desc

    def delete(self, digest: str) -> None:
        """Remove this repository's link only; the data stays for garbage collection.

        The cache forgets the link before and after, so a ``stat`` racing the delete cannot
        leave it cached.
        """
        validate_digest(digest)
        path = p.path_for(p.LayerLinkPath(self.name, digest))
        if self._cache is not None:
            self._cache.forget_member(self.name, digest)
        if read_link(self._driver, path) != digest:
            raise BlobUnknownError(
                f"blob {digest} unknown to {self.name}", detail={"digest": digest}
            )
        self._driver.delete(path)
        if self._cache is not None:
            self._cache.forget_member(self.name, digest)
