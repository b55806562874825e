"""The one store-specific writer: continuing an upload that Distribution's azure driver left.

Distribution's azure driver stores an upload in progress as an *append blob*. So that a mixed
fleet (Distribution and layerstore behind one load balancer) can finish such an upload, a
resume at an append blob continues it with Append Block (:class:`AppendBlobWriter`); every
other write goes through the core's PartWriter. A fresh write replaces an append blob with a
block blob (see ``AzureBucket.start_upload``).
"""

from __future__ import annotations

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobType

from layerstore_core.driver import FileWriter
from layerstore_core.errors import StorageDriverError, WriteConflictError

from .errors import error_code, translated

#: Largest Append Block that every service version takes.
MAX_APPEND_SIZE = 4 * 2**20


def continue_append_blob(blob: BlobClient, driver: str, path: str, chunksize: int) -> FileWriter:
    """A writer that appends to the append blob ``blob`` at its current size."""
    with translated(path):
        props = blob.get_blob_properties()
    if props.blob_type != BlobType.APPENDBLOB:
        raise StorageDriverError(f"cannot append to a {props.blob_type}", path=path)
    return AppendBlobWriter(blob, driver, path, props.size, min(chunksize, MAX_APPEND_SIZE))


class AppendBlobWriter(FileWriter):
    """Appends to an existing append blob at its size, so a mixed fleet can finish an upload.

    Each Append Block carries the offset it expects (``appendpos``): of rival writers appending
    at one offset only one lands, and the others get WriteConflictError (one writer per write).
    A refused append whose bytes are there anyway is our own retried append that had landed,
    or a rival's of the same bytes: either way the blob holds what we meant, so it counts as
    written. The blob caps at 50,000 appends; Distribution's writer has the same limit.
    Memory: one append (``<= 4 MiB``).
    """

    def __init__(self, blob: BlobClient, driver: str, path: str, size: int, piece: int) -> None:
        super().__init__(driver, path, size)
        self._blob = blob
        self._piece = piece
        self._stored = size
        self._buffer = bytearray()

    def _write(self, data: memoryview) -> None:
        self._buffer += data
        while len(self._buffer) >= self._piece:
            self._append(self._piece)

    def _close(self) -> None:
        while self._buffer:
            self._append(min(len(self._buffer), self._piece))

    def _commit(self) -> None:
        """The bytes are in place once appended: committing is flushing."""
        self._close()

    def _cancel(self) -> None:
        self._buffer = bytearray()
        with translated(self.path):
            try:
                self._blob.delete_blob()
            except ResourceNotFoundError:
                pass

    def _release(self) -> None:
        self._buffer = bytearray()

    def _append(self, n: int) -> None:
        piece = bytes(self._buffer[:n])
        with translated(self.path):
            try:
                self._blob.append_block(piece, length=n, appendpos_condition=self._stored)
            except HttpResponseError as exc:
                if error_code(exc) != "AppendPositionConditionNotMet":
                    raise
                if not self._landed(piece):
                    raise WriteConflictError(
                        f"another writer appended at offset {self._stored} first", path=self.path
                    ) from exc
        self._stored += n
        del self._buffer[:n]

    def _landed(self, piece: bytes) -> bool:
        """Whether the blob holds exactly ``piece`` at our offset (only after a refused append)."""
        if self._blob.get_blob_properties().size < self._stored + len(piece):
            return False
        got = self._blob.download_blob(offset=self._stored, length=len(piece)).readall()
        return bytes(got) == piece
