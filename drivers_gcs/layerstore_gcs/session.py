"""GCS resumable-upload sessions as the object-store base's multipart upload.

Writes are segmented (:attr:`layerstore_core.objectstore.Bucket.segmented`): one session per
segment object, which one writer session fills and seals; no rival ever sends to it.

``Blob.create_resumable_upload_session`` (public google-cloud-storage API) starts the session;
its URI, a random token and the start time form the upload id the core keeps in its state
object. Parts go to the session in order at their offsets (``bytes a-b/*``), the final one
with the total size (``bytes a-b/total``, or ``bytes */total`` when nothing is left). The
requests use a public transport of our own (a ``requests.Session``): the session URI is itself
the credential (GCS: "the session URI acts as an authentication token"), and the SDK has no
public way to hand out its authorized session. google-resumable-media's ``ResumableUpload``
cannot be used: it attaches to a session only through its own ``initiate()``, so another
process could not continue one.

Transient failures (dropped connections, 408, 429, 5xx) are retried by a
``google.api_core.retry.Retry``; an attempt after a failure first asks the session how many
bytes it holds (``bytes */*``) and sends only the rest. When the session holds more than the
part being sent (an attempt whose answer was lost had landed), those bytes are kept: the part
counts as sent. The session stamps its object with the token (custom metadata
``layerstore-upload``) so that a final request whose answer was lost is recognized as ours
even where the server has forgotten the finished session (both emulators do).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import uuid
from collections.abc import Callable

import requests
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry

from layerstore_core.errors import StorageDriverError

from .errors import UploadSessionExpiredError, translated

log = logging.getLogger(__name__)

#: Custom-metadata key naming the session that wrote an object.
TOKEN_KEY = "layerstore-upload"
#: GCS drops resumable sessions a week after they start.
SESSION_LIFETIME = dt.timedelta(days=7)
_RANGE = re.compile(r"^bytes=0-(\d+)$")
_GONE = (404, 410)
#: Statuses after which a request is sent again (after asking the session where it stands).
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def transient(exc: Exception) -> bool:
    """Whether a failed session request is worth another attempt."""
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return True
    return isinstance(exc, gexc.GoogleAPICallError) and exc.code in _TRANSIENT_STATUS


@dataclasses.dataclass(frozen=True)
class SessionId:
    """A session as the core stores it (its upload id): URI, our token, when it started."""

    uri: str
    token: str
    created: dt.datetime

    @classmethod
    def new(cls, uri: str, token: str) -> SessionId:
        return cls(uri, token, dt.datetime.now(dt.UTC))

    @staticmethod
    def new_token() -> str:
        return uuid.uuid4().hex

    def encode(self) -> str:
        return f"{self.token} {self.created.isoformat()} {self.uri}"

    @classmethod
    def decode(cls, upload_id: str, path: str | None) -> SessionId:
        try:
            token, created, uri = upload_id.split(" ", 2)
            return cls(uri, token, dt.datetime.fromisoformat(created))
        except ValueError as exc:
            raise StorageDriverError(f"unreadable upload id: {exc}", path=path) from exc

    def check_alive(self, path: str | None) -> None:
        """Raise if GCS has certainly dropped the session by now."""
        if dt.datetime.now(dt.UTC) - self.created >= SESSION_LIFETIME:
            raise UploadSessionExpiredError(
                f"upload session started {self.created.isoformat()} has expired "
                f"(GCS keeps sessions {SESSION_LIFETIME.days} days); start the upload again",
                path=path,
            )


class _Finished(Exception):
    """The session already holds the finished object (our final request had arrived)."""


class SessionClient:
    """Sends parts to resumable sessions; ``transport`` is public so tests can drop requests.

    ``finished(total, token)`` tells whether the object at the session's key is our finished
    upload of ``total`` bytes (used when the server has forgotten the session).
    """

    def __init__(self, timeout: float, retries: int) -> None:
        self.transport = requests.Session()
        self.timeout = timeout
        self.retries = retries

    def close(self) -> None:
        self.transport.close()

    def _retry(self) -> Retry:
        """At most ``retries`` more attempts, backing off 0.25 s to 4 s, only when transient."""
        attempts = [0]

        def predicate(exc: Exception) -> bool:
            attempts[0] += 1
            return attempts[0] <= self.retries and transient(exc)

        return Retry(predicate=predicate, initial=0.25, maximum=4.0, multiplier=2.0, timeout=None)

    def send(
        self,
        session: SessionId,
        offset: int,
        data: memoryview,
        total: int | None,
        finished: Callable[[], bool],
        path: str | None,
    ) -> None:
        """Store ``data`` at ``offset``; with ``total`` set, as the final request."""
        session.check_alive(path)
        tried = [False]

        def attempt() -> None:
            start = offset
            if tried[0]:  # after a failure: only what the session does not hold yet
                start = self._held(session, total, finished, path)
            tried[0] = True
            self._send_from(session, offset, data, start, total, finished, path)

        try:
            with translated(path, session=True):
                self._retry()(attempt)()
        except _Finished:
            return

    def _send_from(
        self,
        session: SessionId,
        offset: int,
        data: memoryview,
        start: int,
        total: int | None,
        finished: Callable[[], bool],
        path: str | None,
    ) -> None:
        """Send ``data[start - offset:]``; a 308 that kept only some of it sends the rest."""
        end = offset + data.nbytes
        while True:
            if start < offset:
                raise StorageDriverError(
                    f"upload session holds {start} bytes but this write is at {offset}; "
                    "start the upload again",
                    path=path,
                )
            if start >= end and total is None:
                if start > end:
                    log.info("gcs: session holds %d, beyond this part's end %d", start, end)
                return
            response = self._put(session, data[start - offset :], start, total)
            if response.status_code in (200, 201) and total is not None:
                return
            if response.status_code == 308:
                start = _held_bytes(response)
                continue
            if response.status_code in _GONE and total is not None and finished():
                return
            if 400 <= response.status_code < 500 and response.status_code not in _GONE:
                # e.g. a chunk at an offset the session has passed: ask where it stands
                log.info("gcs: part at %d answered %d; asking", start, response.status_code)
                held = self._held(session, total, finished, path)
                if held != start:
                    start = held
                    continue
            raise gexc.from_http_response(response)  # type: ignore[no-untyped-call]  # untyped

    def _put(
        self, session: SessionId, view: memoryview, start: int, total: int | None
    ) -> requests.Response:
        length = "*" if total is None else str(total)
        end = start + view.nbytes - 1
        content_range = f"bytes {start}-{end}/{length}" if view.nbytes else f"bytes */{length}"
        response: requests.Response = self.transport.put(
            session.uri, data=view, headers={"Content-Range": content_range}, timeout=self.timeout
        )
        return response

    def _held(
        self,
        session: SessionId,
        total: int | None,
        finished: Callable[[], bool],
        path: str | None,
    ) -> int:
        """Bytes the session holds (a status query); raises _Finished when it is done."""
        response = self.transport.put(
            session.uri, data=b"", headers={"Content-Range": "bytes */*"}, timeout=self.timeout
        )
        if response.status_code == 308:
            return _held_bytes(response)
        if response.status_code in (200, 201):
            if total is not None and _finished_size(response) == total:
                raise _Finished
            raise StorageDriverError(
                f"upload session already finalized (HTTP {response.status_code})", path=path
            )
        if response.status_code in _GONE and total is not None and finished():
            raise _Finished
        raise gexc.from_http_response(response)  # type: ignore[no-untyped-call]  # untyped SDK

    def cancel(self, session: SessionId, path: str | None) -> None:
        """Cancel the session; one already gone or an emulator that cannot cancel is fine."""

        def attempt() -> None:
            response = self.transport.delete(session.uri, timeout=self.timeout)
            # 499 = cancelled; 404/410 = already gone; 501 = the emulator cannot cancel.
            if response.status_code not in (200, 204, 404, 410, 499, 501):
                raise gexc.from_http_response(response)  # type: ignore[no-untyped-call]  # untyped

        with translated(path, session=True):
            self._retry()(attempt)()


def _held_bytes(response: requests.Response) -> int:
    """Bytes a session holds according to a 308 answer (no Range: none)."""
    match = _RANGE.match(response.headers.get("Range", ""))
    return int(match.group(1)) + 1 if match else 0


def _finished_size(response: requests.Response) -> int | None:
    """The object size in a finalized session's answer, if it has one."""
    try:
        return int(response.json()["size"])
    except (ValueError, KeyError, TypeError):
        return None
