"""The ``gcs`` writer: one resumable upload session per write, continued by any process.

Data goes to the session in chunks that are multiples of 256 KiB (``chunksize`` while
writing). ``close()`` sends what it can as whole 256 KiB units and saves the rest in a *state
object*; ``writer(path, append=True)`` anywhere reads that object and carries on.

Side-object scheme
------------------
The state of an unfinished write to object ``K`` lives in the one object
``~layerstore-uploads/K/~state`` (:data:`SIDE_PREFIX`). It sits outside every root directory
(``K`` already includes the root), and ``~`` cannot occur in a path component, so no contract
path maps to it; when the root directory is the bucket root, ``list`` and ``walk`` drop the
``~layerstore-uploads`` name because it is not a valid child name. Deleting ``/a`` removes
``~layerstore-uploads/<root>a/`` too, i.e. its own state and its descendants' (never ``/ab``'s).
Its content is ``MAGIC``, one JSON line (session URI, bytes the session holds, creation time)
and then the tail — fewer than 256 KiB not yet sent.

The saved offset is trusted: the session is queried only when it disagrees (a chunk rejected,
only partly kept, or its answer lost), to find where it stands. A session stamps its object
with a random token (custom metadata ``layerstore-upload``), so that when the answer to the
final request is lost and the server has forgotten the session (as both emulators do), the
finished object is still recognized as ours. A write that never outgrows one chunk and is
never closed holding 256 KiB or more opens no session: commit stores it in one simple upload.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

import requests

from layerstore_core.driver import FileWriter
from layerstore_core.errors import StorageDriverError

from .config import CHUNK_MULTIPLE
from .errors import UploadSessionExpiredError, raise_for_response, translated

if TYPE_CHECKING:
    from .driver import GCSDriver

log = logging.getLogger(__name__)

SIDE_PREFIX = "~layerstore-uploads/"
#: Custom-metadata key naming the session that wrote an object.
TOKEN_KEY = "layerstore-upload"
MAGIC = b"layerstore-gcs-upload/1\n"
#: GCS drops resumable sessions a week after they start.
SESSION_LIFETIME = dt.timedelta(days=7)
#: Status codes after which a chunk is sent again (after asking the session where it stands).
_TRANSIENT = {408, 429, 500, 502, 503, 504}
_RANGE = re.compile(r"^bytes=0-(\d+)$")


@dataclasses.dataclass
class UploadState:
    """What a later ``writer(path, append=True)`` needs: session, its offset, and the tail."""

    session: str | None
    offset: int
    created: dt.datetime
    tail: bytes
    #: Also stored as object metadata by the session: tells our finished object from another.
    token: str = ""

    @property
    def size(self) -> int:
        return self.offset + len(self.tail)

    def encode(self) -> bytes:
        meta = {
            "session": self.session,
            "offset": self.offset,
            "created": self.created.isoformat(),
            "token": self.token,
        }
        return MAGIC + json.dumps(meta).encode() + b"\n" + self.tail

    @classmethod
    def decode(cls, raw: bytes, path: str) -> UploadState:
        try:
            if not raw.startswith(MAGIC):
                raise ValueError("bad magic")
            line, _, tail = raw[len(MAGIC) :].partition(b"\n")
            meta = json.loads(line)
            return cls(
                session=meta["session"],
                offset=int(meta["offset"]),
                created=dt.datetime.fromisoformat(meta["created"]),
                tail=tail,
                token=str(meta.get("token", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageDriverError(f"unreadable upload state: {exc}", path=path) from exc

    def check_alive(self, path: str) -> None:
        """Raise if GCS has certainly dropped the session by now."""
        if self.session is not None and _now() - self.created >= SESSION_LIFETIME:
            raise UploadSessionExpiredError(
                f"upload session started {self.created.isoformat()} has expired "
                f"(GCS keeps sessions {SESSION_LIFETIME.days} days); start the upload again",
                path=path,
            )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class GCSWriter(FileWriter):
    """A resumable-upload session plus a buffer of at most one chunk."""

    def __init__(self, driver: GCSDriver, path: str, key: str, state: UploadState | None):
        super().__init__(driver.name, path, state.size if state else 0)
        self._driver = driver
        self._key = key
        self._chunk = driver.params.chunksize
        self._session = state.session if state else None
        self._offset = state.offset if state else 0
        self._created = state.created if state else _now()
        self._token = state.token if state else ""
        self._buffer = bytearray(state.tail if state else b"")
        self._saved = state is not None

    # -- hooks ----------------------------------------------------------------------------------

    def _write(self, data: memoryview) -> None:
        """Buffer up to one chunk; a full chunk goes out once more data shows it is not the last.

        Holding the full chunk back lets ``commit()`` send it as the final request, instead of
        finishing with an extra empty one.
        """
        while data:
            if len(self._buffer) == self._chunk:
                full, self._buffer = self._buffer, bytearray()
                self._send(full, total=None)
            room = self._chunk - len(self._buffer)
            self._buffer += data[:room]
            data = data[room:]

    def _close(self) -> None:
        whole = len(self._buffer) // CHUNK_MULTIPLE * CHUNK_MULTIPLE
        if whole:
            head = self._buffer
            self._buffer = bytearray(memoryview(head)[whole:])
            self._send(memoryview(head)[:whole], total=None)
        state = UploadState(
            self._session, self._offset, self._created, bytes(self._buffer), self._token
        )
        self._driver.upload_bytes(self._driver.state_key(self._key), state.encode(), self.path)
        self._saved = True

    def _commit(self) -> None:
        if self._session is None:
            self._driver.upload_bytes(self._key, bytes(self._buffer), self.path)
        else:
            self._send(self._buffer, total=self.size)
        self._buffer = bytearray()
        if self._saved:
            self._driver.delete_object(self._driver.state_key(self._key), self.path)

    def _cancel(self) -> None:
        self._buffer = bytearray()
        state = UploadState(self._session, self._offset, self._created, b"")
        self.discard(self._driver, self._key, state, self.path, saved=self._saved)

    def _release(self) -> None:
        """Drop the buffered tail; the saved state object still describes the session."""
        self._buffer = bytearray()

    @staticmethod
    def discard(
        driver: GCSDriver, key: str, state: UploadState, path: str, *, saved: bool = True
    ) -> None:
        """Cancel the session (where the server supports it) and delete the state object."""
        if state.session is not None:
            with translated(path, session=True):
                response = driver.client._http.delete(state.session, timeout=driver.timeout)
            # 499 = cancelled; 404/410 = already gone; 501 = the emulator cannot cancel.
            if response.status_code not in (204, 404, 410, 499, 501):
                with translated(path, session=True):
                    raise_for_response(response)
        if saved:
            driver.delete_object(driver.state_key(key), path)

    # -- the session ----------------------------------------------------------------------------

    def _start_session(self) -> str:
        d = self._driver
        blob = d.bucket.blob(self._key)
        self._token = uuid.uuid4().hex
        blob.metadata = {TOKEN_KEY: self._token}
        with translated(self.path):
            uri: str = blob.create_resumable_upload_session(
                content_type="application/octet-stream", timeout=d.timeout, retry=d.retry
            )
        self._created = _now()
        return uri

    def _finished(self, total: int) -> bool:
        """Whether the object at the key is this session's finished upload of ``total`` bytes."""
        d = self._driver
        with translated(self.path):
            blob = d.bucket.get_blob(self._key, timeout=d.timeout, retry=d.retry)
        meta = (blob.metadata or {}) if blob is not None else {}
        return blob is not None and blob.size == total and meta.get(TOKEN_KEY) == self._token

    def _send(self, data: bytearray | memoryview, total: int | None) -> None:
        """Send ``data`` at the session's offset; ``total`` set makes it the final request."""
        if self._session is None:
            self._session = self._start_session()
        view = memoryview(data)
        failures = 0
        while True:
            response = self._put(view, total)
            if response is not None and total is not None and response.status_code in (200, 201):
                self._offset = total
                return
            persisted = self._persisted(response)
            if persisted is None:
                failures += 1
                persisted = self._recover(response, failures, total)
                if persisted is None:  # our final request had arrived after all
                    self._offset = total or 0
                    return
            if not self._offset <= persisted <= self._offset + len(view):
                raise StorageDriverError(
                    f"upload session holds {persisted} bytes but this write is at "
                    f"{self._offset}..{self._offset + len(view)}; start the upload again",
                    path=self.path,
                )
            view = view[persisted - self._offset :]
            self._offset = persisted
            if not view and total is None:
                return

    def _put(self, view: memoryview, total: int | None) -> requests.Response | None:
        """One chunk request; None when the connection failed (the chunk may have arrived)."""
        start, end = self._offset, self._offset + len(view) - 1
        length = "*" if total is None else str(total)
        content_range = f"bytes {start}-{end}/{length}" if view else f"bytes */{length}"
        d = self._driver
        try:
            response: requests.Response = d.client._http.put(
                self._session,
                data=view,
                headers={"Content-Range": content_range},
                timeout=d.timeout,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            log.info("gcs: chunk at %d failed: %s", start, exc)
            return None
        if response.status_code in (404, 410):
            with translated(self.path, session=True):
                raise_for_response(response)
        return response

    @staticmethod
    def _persisted(response: requests.Response | None) -> int | None:
        """Bytes the session holds according to a 308 answer, else None."""
        if response is None or response.status_code != 308:
            return None
        match = _RANGE.match(response.headers.get("Range", ""))
        return int(match.group(1)) + 1 if match else 0

    def _recover(
        self, response: requests.Response | None, failures: int, total: int | None
    ) -> int | None:
        """After a failed chunk: give up, or wait if transient and ask the session its offset.

        None means the session already holds the finished object of ``total`` bytes.
        """
        status = None if response is None else response.status_code
        retryable = status is None or status in _TRANSIENT or 400 <= status < 500
        if failures > self._driver.params.chunkretries or not retryable:
            if response is None:
                raise StorageDriverError("upload chunk failed: connection lost", path=self.path)
            with translated(self.path, session=True):
                raise_for_response(response)
            raise StorageDriverError(f"upload chunk answered HTTP {status}", path=self.path)
        if status is None or status in _TRANSIENT:
            time.sleep(min(0.25 * 2.0**failures, 4.0))
        log.info("gcs: chunk at %d answered %s; asking the session", self._offset, status)
        d = self._driver
        with translated(self.path, session=True):
            query: requests.Response = d.client._http.put(
                self._session, data=b"", headers={"Content-Range": "bytes */*"}, timeout=d.timeout
            )
        # GCS answers a finished session with the object; emulators forget it (404).
        if query.status_code == 404 and total is not None and self._finished(total):
            return None
        with translated(self.path, session=True):
            raise_for_response(query)
        persisted = self._persisted(query)
        if persisted is None and total is not None and _finished_size(query) == total:
            return None
        if persisted is None:
            raise StorageDriverError(
                f"upload session already finalized (HTTP {query.status_code})", path=self.path
            )
        if persisted != self._offset:
            log.info("gcs: session holds %d, saved state said %d", persisted, self._offset)
        return persisted


def _finished_size(response: requests.Response) -> int | None:
    """Return the object size in a finalized session's answer, if it has one."""
    if response.status_code not in (200, 201):
        return None
    try:
        return int(response.json()["size"])
    except (ValueError, KeyError, TypeError):
        return None
