"""The ``gcs`` driver: layerstore's storage contract on a Google Cloud Storage bucket.

A path ``/a/b`` is the object ``<root>a/b``; directories are implied by prefixes. Unfinished
writes keep their state in side objects outside the path namespace (see :mod:`.writer`), which
``list`` and ``walk`` never see. Every SDK call gets an explicit timeout and a bounded retry
policy, and raises through :func:`.errors.translated`.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
from collections.abc import Iterable, Iterator
from typing import IO, Any

import google.auth
from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import storage  # type: ignore[import-untyped]  # ships no py.typed
from google.cloud.storage.retry import DEFAULT_RETRY  # type: ignore[import-untyped]  # ditto
from google.oauth2 import service_account

from layerstore_core.driver import EPOCH, FileInfo, FileWriter, StorageDriver, walk_order_key
from layerstore_core.errors import InvalidOffsetError, PathNotFoundError, StorageDriverError

from .config import GCSParams
from .errors import translated
from .writer import SIDE_PREFIX, GCSWriter, UploadState

log = logging.getLogger(__name__)

_SCOPES = ["https://www.googleapis.com/auth/devstorage.read_write"]
#: A child name the path grammar can produce; anything else (our side objects, foreign
#: objects such as ``dir/`` placeholders) is not listed.
_CHILD_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
#: The JSON batch endpoint takes at most this many requests.
_BATCH_LIMIT = 100
_PAGE_SIZE = 1000
#: Bytes per ranged request of a reader, at least: fewer round trips than tiny chunks would give.
MIN_READ_SIZE = 4 * 2**20


def _credentials(params: GCSParams) -> tuple[Credentials, str | None]:
    """(credentials for requests, project) from the parameters; no network."""
    if params.anonymous:
        anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]  # google-auth untyped
        return anonymous, params.project or "<none>"
    if params.keyfile:
        creds = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
            params.keyfile, scopes=_SCOPES
        )
        return creds, params.project or creds.project_id
    creds, project = google.auth.default(scopes=_SCOPES)
    return creds, params.project or project


def _signer(params: GCSParams) -> service_account.Credentials | None:
    """Load the service-account key that signs redirect URLs, when one is configured."""
    if not params.keyfile:
        return None
    key: service_account.Credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
        params.keyfile
    )
    return key


class GCSDriver(StorageDriver):
    """Storage driver for Google Cloud Storage (and its emulators, through ``endpoint``)."""

    name = "gcs"
    Params = GCSParams

    def __init__(self, params: GCSParams) -> None:
        self.params = params
        self.root = params.root
        with translated(None):
            creds, project = _credentials(params)
            options = {"api_endpoint": params.endpoint} if params.endpoint else None
            self.client = storage.Client(
                project=project, credentials=creds, client_options=options
            )
            self.signer = _signer(params)
        self.bucket = self.client.bucket(params.bucket)
        self.timeout = params.timeout
        self.retry: Retry = DEFAULT_RETRY.with_timeout(params.retrydeadline)


    @property
    def preferred_chunk_size(self) -> int:
        """One part of the writer: whole parts are what the writer sends without buffering."""
        return self.params.chunksize

    def close(self) -> None:
        """Close the client's HTTP connections."""
        self.client.close()

    # -- keys ---------------------------------------------------------------------------------

    def key(self, path: str) -> str:
        """Return the object name of ``path``."""
        return self.root + path[1:]

    def _prefix(self, path: str) -> str:
        """Return the name prefix of ``path``'s children."""
        return self.root if path == "/" else self.key(path) + "/"

    def state_key(self, key: str) -> str:
        """Return the side object holding an unfinished write's state for object ``key``."""
        return f"{SIDE_PREFIX}{key}/~state"

    # -- small objects --------------------------------------------------------------------------

    def _get_content(self, path: str) -> bytes:
        with translated(path):
            data: bytes = self.bucket.blob(self.key(path)).download_as_bytes(
                timeout=self.timeout, retry=self.retry, raw_download=True
            )
        return data

    def _put_content(self, path: str, data: bytes) -> None:
        self.upload_bytes(self.key(path), data, path)

    def upload_bytes(self, key: str, data: bytes, path: str | None) -> None:
        """One simple upload; retried, since writing the same bytes twice is harmless here."""
        with translated(path):
            self.bucket.blob(key).upload_from_string(
                data,
                content_type="application/octet-stream",
                timeout=self.timeout,
                retry=self.retry,
            )

    # -- reading ------------------------------------------------------------------------------

    def _reader(self, path: str, offset: int) -> IO[bytes]:
        with translated(path):
            blob = self.bucket.get_blob(self.key(path), timeout=self.timeout, retry=self.retry)
        if blob is None:
            raise PathNotFoundError(path=path)
        size = blob.size or 0
        if offset > size:
            raise InvalidOffsetError(path=path, offset=offset)
        raw = _RangeReader(self, path, blob.generation, offset, size)
        return io.BufferedReader(raw, buffer_size=max(self.params.chunksize, MIN_READ_SIZE))

    # -- writing ------------------------------------------------------------------------------

    def _writer(self, path: str, append: bool) -> FileWriter:
        key = self.key(path)
        state = self.load_state(key, path)
        if not append:
            if state is not None:
                GCSWriter.discard(self, key, state, path)
            return GCSWriter(self, path, key, None)
        if state is not None:
            state.check_alive(path)
            return GCSWriter(self, path, key, state)
        return self._append_to_committed(path, key)

    def _append_to_committed(self, path: str, key: str) -> FileWriter:
        """Continue committed content: a new session starts with a streamed copy of it.

        A registry never appends to committed blobs; the contract allows it, so it works,
        at the cost of one pass over the content (compose would save it but needs a second
        object and a compose at commit).
        """
        with self._reader(path, 0) as source:
            writer = GCSWriter(self, path, key, None)
            for piece in iter(lambda: source.read(self.params.chunksize), b""):
                writer.write(piece)
        return writer

    def load_state(self, key: str, path: str) -> UploadState | None:
        """Load the saved state of an unfinished write to ``key``, or None."""
        try:
            with translated(path):
                raw = self.bucket.blob(self.state_key(key)).download_as_bytes(
                    timeout=self.timeout, retry=self.retry, raw_download=True
                )
        except PathNotFoundError:
            return None
        return UploadState.decode(raw, path)

    # -- metadata -------------------------------------------------------------------------------

    def _stat(self, path: str) -> FileInfo:
        if path != "/":
            with translated(path):
                blob = self.bucket.get_blob(
                    self.key(path), timeout=self.timeout, retry=self.retry
                )
            if blob is not None:
                return FileInfo(path, blob.size or 0, blob.updated or EPOCH, False)
            if not self._any_child(path):
                raise PathNotFoundError(path=path)
        return FileInfo(path, 0, EPOCH, True)

    def _any_child(self, path: str) -> bool:
        for _ in self._names(path, self._prefix(path), limit=1):
            return True
        return False

    def _list(self, path: str) -> list[str]:
        prefix = self._prefix(path)
        names: set[str] = set()
        with translated(path):
            listing = self.client.list_blobs(
                self.bucket,
                prefix=prefix,
                delimiter="/",
                page_size=_PAGE_SIZE,
                timeout=self.timeout,
                retry=self.retry,
            )
            for page in listing.pages:
                names.update(b.name[len(prefix) :] for b in page)
                names.update(p[len(prefix) :].rstrip("/") for p in page.prefixes)
        children = [n for n in names if _CHILD_NAME.match(n)]
        if not children and path != "/":
            raise PathNotFoundError(path=path)
        base = "" if path == "/" else path
        return [f"{base}/{name}" for name in children]

    def _names(self, path: str, prefix: str, limit: int | None = None) -> Iterator[Any]:
        """Every object under ``prefix`` (flat, paginated), as SDK blobs."""
        with translated(path):
            yield from self.client.list_blobs(
                self.bucket,
                prefix=prefix,
                max_results=limit,
                page_size=_PAGE_SIZE,
                timeout=self.timeout,
                retry=self.retry,
            )

    def _walk(self, path: str) -> Iterator[FileInfo]:
        """One flat listing, directories implied, sorted into the contract's walk order."""
        prefix = self._prefix(path)
        base = "" if path == "/" else path
        infos: dict[str, FileInfo] = {}
        for blob in self._names(path, prefix):
            parts = blob.name[len(prefix) :].split("/")
            if not all(_CHILD_NAME.match(p) for p in parts):
                continue
            modified = blob.updated or EPOCH
            for depth in range(1, len(parts)):
                dir_path = base + "/" + "/".join(parts[:depth])
                seen = infos.get(dir_path)
                if seen is None or (seen.is_dir and seen.modified < modified):
                    infos[dir_path] = FileInfo(dir_path, 0, modified, True)
            file_path = base + "/" + "/".join(parts)
            infos.setdefault(file_path, FileInfo(file_path, blob.size or 0, modified, False))
        if not infos and path != "/":
            raise PathNotFoundError(path=path)
        for key in sorted(infos, key=walk_order_key):
            yield infos[key]

    # -- move and delete ------------------------------------------------------------------------

    def _move(self, source: str, dest: str) -> None:
        if source == dest:  # rewrite-then-delete would delete the only copy
            if self._stat(source).is_dir:
                raise PathNotFoundError(path=source)
            return
        src = self.bucket.blob(self.key(source))
        dst = self.bucket.blob(self.key(dest))
        token: str | None = None
        with translated(source):
            while True:  # a rewrite may need several calls for large or cross-class objects
                token, _, _ = dst.rewrite(src, token=token, timeout=self.timeout, retry=self.retry)
                if token is None:
                    break
        with translated(source):
            src.delete(timeout=self.timeout, retry=self.retry)

    def _delete(self, path: str) -> None:
        key = self.key(path)
        with translated(path):
            own = self.bucket.get_blob(key, timeout=self.timeout, retry=self.retry)
        doomed = [key] if own is not None else []
        doomed.extend(b.name for b in self._names(path, key + "/"))
        found = bool(doomed)
        # Unfinished writes at or under the path go too (their sessions expire by themselves).
        doomed.extend(b.name for b in self._names(path, f"{SIDE_PREFIX}{key}/"))
        self.delete_objects(doomed, path)
        if not found:
            raise PathNotFoundError(path=path)

    def delete_objects(self, names: Iterable[str], path: str | None) -> None:
        """Delete objects, in JSON batches where enabled; already-gone ones are fine."""
        names = list(names)
        if not self.params.batchdelete:
            for name in names:
                self.delete_object(name, path)
            return
        for start in range(0, len(names), _BATCH_LIMIT):
            with translated(path):
                with self.client.batch(raise_exception=False) as batch:
                    for name in names[start : start + _BATCH_LIMIT]:
                        self.bucket.blob(name).delete(timeout=self.timeout)
                # ``finish`` keeps every sub-response; the SDK only raises the first failure.
                failed = [r for r in batch._responses if r.status_code not in (200, 204, 404)]
            if failed:
                raise StorageDriverError(
                    f"batch delete: {len(failed)} failed, first HTTP {failed[0].status_code}",
                    path=path,
                )

    def delete_object(self, name: str, path: str | None) -> None:
        """Delete one object; a missing one is fine."""
        try:
            with translated(path):
                self.bucket.blob(name).delete(timeout=self.timeout, retry=self.retry)
        except PathNotFoundError:
            pass

    # -- redirects ------------------------------------------------------------------------------

    def _redirect_url(self, path: str, method: str) -> str | None:
        """Sign a V4 URL when a service-account key is configured; else None."""
        if self.signer is None:
            return None
        with translated(path):
            url: str = self.bucket.blob(self.key(path)).generate_signed_url(
                version="v4",
                expiration=dt.timedelta(seconds=self.params.redirectexpiry),
                method=method,
                credentials=self.signer,
                api_access_endpoint=self.params.endpoint or None,
            )
        return url


class _RangeReader(io.RawIOBase):
    """Reads one object generation by ranged requests, one buffer's worth each.

    Separate complete requests (not one long streamed response) keep a slow consumer from
    holding a connection — and, on the single-threaded emulator, the whole server.
    """

    def __init__(self, driver: GCSDriver, path: str, generation: int | None, pos: int, size: int):
        self._driver = driver
        self._path = path
        self._blob = driver.bucket.blob(driver.key(path), generation=generation)
        self._pos = pos
        self._size = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        data = self._fetch(want)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def readall(self) -> bytes:
        pieces = []
        while self._pos < self._size:
            step = max(self._driver.params.chunksize, MIN_READ_SIZE)
            data = self._fetch(min(step, self._size - self._pos))
            pieces.append(data)
            self._pos += len(data)
        return b"".join(pieces)

    def _fetch(self, want: int) -> bytes:
        d = self._driver
        try:
            with translated(self._path):
                data: bytes = self._blob.download_as_bytes(
                    start=self._pos,
                    end=self._pos + want - 1,
                    raw_download=True,
                    checksum=None,
                    timeout=d.timeout,
                    retry=d.retry,
                )
        except StorageDriverError as exc:  # raised outside the core's wrapper: name ourselves
            exc.driver = exc.driver or d.name
            raise
        if not data:
            raise StorageDriverError("object shrank while being read", path=self._path)
        return data
