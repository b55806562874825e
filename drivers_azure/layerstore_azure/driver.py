"""The ``azure`` driver: one Azure Blob container (under an optional root directory).

A contract path ``/a/b`` is the blob ``<rootdirectory>/a/b``; directories are implied by name
prefixes, as in Distribution's azure driver. Blobs that only have staged blocks are invisible
to ``stat``/``list``/``walk``; this driver's own unfinished writes show as an empty file (a fresh
writer truncates, as the filesystem driver does). Retries are the SDK's exponential retry
policy (``maxretries``, 3 by default); every SDK failure is translated in ``errors.py``.
"""

from __future__ import annotations

import datetime as dt
import importlib
import io
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import (
    BlobClient,
    BlobProperties,
    BlobSasPermissions,
    BlobServiceClient,
    BlobType,
    StorageStreamDownloader,
    UserDelegationKey,
    generate_blob_sas,
)

from layerstore_core.driver import EPOCH, FileInfo, FileWriter, StorageDriver, join_path
from layerstore_core.driver import walk_order_key as _walk_order_key
from layerstore_core.errors import InvalidOffsetError, PathNotFoundError, StorageDriverError
from layerstore_core.params import ParameterError

from .config import AzureParams
from .errors import error_code, translated
from .writer import open_writer

#: Readers fetch ranges of at least this much (small blocks need not mean small requests).
MIN_GET_SIZE = 4 * 2**20
#: Reads of a whole blob that another writer keeps replacing before one read gets through.
GET_CONTENT_ATTEMPTS = 5
#: Azure's limit on sub-requests in one Blob Batch.
BATCH_SIZE = 256
#: How long ``move`` waits for a pending server-side copy before giving up.
COPY_TIMEOUT = 3600.0
COPY_POLL_FIRST = 0.05
COPY_POLL_MAX = 2.0
#: A user delegation key is fetched for this long and reused until it nears expiry.
DELEGATION_KEY_LIFETIME = dt.timedelta(hours=6)


def make_service(params: AzureParams) -> BlobServiceClient:
    """The SDK client: download sizes bounded (a reader holds one chunk), the SDK's retries."""
    get_size = max(params.chunksize, MIN_GET_SIZE)
    sizes: dict[str, Any] = {
        "max_block_size": params.chunksize,
        "max_single_get_size": get_size,
        "max_chunk_get_size": get_size,
        "retry_total": params.maxretries,
    }
    if params.connectionstring:
        return BlobServiceClient.from_connection_string(params.connectionstring, **sizes)
    if params.accountkey:
        key = AzureNamedKeyCredential(params.accountname or "", params.accountkey)
        return BlobServiceClient(params.account_url, credential=key, **sizes)
    try:
        identity = importlib.import_module("azure.identity")  # the optional ``identity`` extra
    except ImportError as exc:
        raise ParameterError(
            "driver 'azure': credential: default needs azure-identity; "
            "install it with `pip install layerstore-azure[identity]`"
        ) from exc
    credential = identity.DefaultAzureCredential()
    return BlobServiceClient(params.account_url, credential=credential, **sizes)


def wait_for_copy(
    get_properties: Callable[[], BlobProperties],
    copy_id: str | None,
    *,
    timeout: float = COPY_TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll a server-side copy until it succeeds; failed, aborted or timed out → error."""
    delay, waited = COPY_POLL_FIRST, 0.0
    while True:
        copy = get_properties().copy
        if copy_id is not None and copy.id not in (None, copy_id):
            raise StorageDriverError(f"copy {copy_id} was superseded by copy {copy.id}")
        if copy.status in (None, "success"):
            return
        if copy.status != "pending":
            raise StorageDriverError(f"copy {copy.status}: {copy.status_description or ''}")
        if waited >= timeout:
            raise StorageDriverError(f"copy still pending after {timeout:.0f}s ({copy.progress})")
        sleep(delay)
        waited += delay
        delay = min(delay * 2, COPY_POLL_MAX)


class _BlobStream(io.RawIOBase):
    """A ranged download as a raw stream: one chunk (``chunksize``) in memory at a time."""

    def __init__(self, downloader: StorageStreamDownloader[bytes], path: str) -> None:
        self._chunks = downloader.chunks()
        self._pending = memoryview(b"")
        self._path = path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                with translated(self._path):
                    chunk = next(self._chunks, None)
            except StorageDriverError as exc:  # raised outside the core's wrapper: name ourselves
                exc.driver = exc.driver or AzureDriver.name
                raise
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class AzureDriver(StorageDriver):
    """Azure Blob Storage: block blobs, SAS redirects, server-side copy for move."""

    name = "azure"
    Params = AzureParams

    def __init__(self, params: AzureParams) -> None:
        self.params = params
        self._service = make_service(params)
        self._container = self._service.get_container_client(params.container)
        self._delegation: tuple[UserDelegationKey, dt.datetime] | None = None


    @property
    def preferred_chunk_size(self) -> int:
        """One part of the writer: whole parts are what the writer sends without buffering."""
        return self.params.chunksize

    def close(self) -> None:
        self._service.close()

    # -- names --------------------------------------------------------------------------------

    def _key(self, path: str) -> str:
        """The blob name for a contract path (``""`` for the root without a root directory)."""
        prefix = self.params.prefix
        if path == "/":
            return prefix
        return prefix + path if prefix else path[1:]

    def _dir_prefix(self, path: str) -> str:
        key = self._key(path)
        return key + "/" if key else ""

    def _blob(self, path: str) -> BlobClient:
        return self._container.get_blob_client(self._key(path))

    # -- content ------------------------------------------------------------------------------

    def _get_content(self, path: str) -> bytes:
        """Whole content; a blob replaced between its chunks (412 on the etag) is read again."""
        for attempt in range(1, GET_CONTENT_ATTEMPTS + 1):
            try:
                with translated(path):
                    return self._blob(path).download_blob().readall()
            except StorageDriverError as exc:
                changed = error_code(exc.__cause__) == "ConditionNotMet"
                if attempt == GET_CONTENT_ATTEMPTS or not changed:
                    raise
        raise AssertionError("unreachable")

    def _put_content(self, path: str, data: bytes) -> None:
        with translated(path):
            self._blob(path).upload_blob(
                data, blob_type=BlobType.BLOCKBLOB, length=len(data), overwrite=True
            )

    def _reader(self, path: str, offset: int) -> IO[bytes]:
        """Offset == size gives an empty stream (the SDK handles it); past the end → 416."""
        try:
            with translated(path):
                downloader = self._blob(path).download_blob(offset=offset or None)
        except InvalidOffsetError as exc:
            exc.offset = offset
            raise
        return io.BufferedReader(_BlobStream(downloader, path), buffer_size=64 * 1024)

    def _writer(self, path: str, append: bool) -> FileWriter:
        p = self.params
        return open_writer(self._blob(path), self.name, path, append, p.chunksize, p.maxconcurrency)

    # -- metadata -----------------------------------------------------------------------------

    def _stat(self, path: str) -> FileInfo:
        if self._key(path) and path != "/":
            try:
                with translated(path):
                    props = self._blob(path).get_blob_properties()
                return FileInfo(path, props.size, props.last_modified, False)
            except PathNotFoundError:
                pass
        with translated(path):
            pages = self._container.list_blobs(
                name_starts_with=self._dir_prefix(path), results_per_page=1
            ).by_page()
            first = next(iter(next(pages, [])), None)
        if first is None and path != "/":
            raise PathNotFoundError(path=path)
        return FileInfo(path, 0, EPOCH, True)

    def _list(self, path: str) -> list[str]:
        prefix = self._dir_prefix(path)
        with translated(path):
            names = [
                join_path(path, item.name[len(prefix) :].rstrip("/"))
                for item in self._container.walk_blobs(name_starts_with=prefix, delimiter="/")
            ]
        if not names and path != "/":
            raise PathNotFoundError(path=path)
        return names

    def _walk(self, path: str) -> Iterator[FileInfo]:
        """From one flat, paginated listing, sorted into the contract's walk order."""
        prefix = self._dir_prefix(path)
        base = path.rstrip("/")
        found: list[FileInfo] = []
        dirs: set[str] = set()
        with translated(path):
            for props in self._container.list_blobs(name_starts_with=prefix):
                parts = props.name[len(prefix) :].split("/")
                for depth in range(1, len(parts)):
                    d = "/".join([base, *parts[:depth]])
                    if d not in dirs:
                        dirs.add(d)
                        found.append(FileInfo(d, 0, EPOCH, True))
                full = "/".join([base, *parts])
                found.append(FileInfo(full, props.size, props.last_modified, False))
        if not found and path != "/":
            raise PathNotFoundError(path=path)
        found.sort(key=lambda info: _walk_order_key(info.path))
        return iter(found)

    # -- move, delete -------------------------------------------------------------------------

    def _move(self, source: str, dest: str) -> None:
        """Server-side copy, polled to completion (Azure may copy asynchronously), then delete."""
        src, dst = self._blob(source), self._blob(dest)
        with translated(source):
            src.get_blob_properties()
        if source == dest:  # copy-then-delete would delete the only copy
            return
        with translated(dest):
            started = dst.start_copy_from_url(src.url)
            if started.get("copy_status") != "success":
                wait_for_copy(dst.get_blob_properties, str(started.get("copy_id") or "") or None)
        with translated(source):
            src.delete_blob()

    def _delete(self, path: str) -> None:
        """Batched deletes of the blob and every blob under ``path/`` (never ``path*``)."""
        key = self._key(path)
        with translated(path):
            names = [key] if self._exists(key) else []
            names += [
                b.name
                for b in self._container.list_blobs(
                    name_starts_with=key + "/", include=["uncommittedblobs"]
                )
            ]
            if not names:
                raise PathNotFoundError(path=path)
            for start in range(0, len(names), BATCH_SIZE):
                self._delete_batch(names[start : start + BATCH_SIZE], path)

    def _exists(self, key: str) -> bool:
        return bool(self._container.get_blob_client(key).exists())

    def _delete_batch(self, names: list[str], path: str) -> None:
        if len(names) == 1:  # one request instead of a batch envelope
            try:
                self._container.delete_blob(names[0], delete_snapshots="include")
            except ResourceNotFoundError:
                pass  # deleted meanwhile: the goal is reached
            return
        results = self._container.delete_blobs(
            *names, delete_snapshots="include", raise_on_any_failure=False
        )
        failed = [r for r in results if r.status_code not in (200, 202, 404)]
        if failed:
            raise StorageDriverError(
                f"{len(failed)} of {len(names)} deletes failed (HTTP {failed[0].status_code})",
                path=path,
            )

    # -- redirects ----------------------------------------------------------------------------

    def _redirect_url(self, path: str, method: str) -> str | None:
        """A read-only SAS URL valid for ``redirectexpiry`` seconds (GET and HEAD both read)."""
        blob = self._blob(path)
        now = dt.datetime.now(dt.UTC)
        expiry = now + dt.timedelta(seconds=self.params.redirectexpiry)
        credential = self._service.credential  # the SDK's shared-key policy, or a token credential
        signing: dict[str, Any]
        if getattr(credential, "account_key", None):
            signing = {"account_key": credential.account_key}
        elif hasattr(credential, "get_token"):
            with translated(path):
                signing = {"user_delegation_key": self._delegation_key(now, expiry)}
        else:
            return None
        sas = generate_blob_sas(
            account_name=self._service.account_name or "",
            container_name=self.params.container,
            blob_name=blob.blob_name,
            permission=BlobSasPermissions(read=True),
            expiry=expiry,
            **signing,
        )
        return f"{blob.url}?{sas}"

    def _delegation_key(self, now: dt.datetime, expiry: dt.datetime) -> UserDelegationKey:
        """A user delegation key valid past ``expiry``, fetched again only when it runs out."""
        if self._delegation is None or self._delegation[1] < expiry:
            until = max(expiry, now + DELEGATION_KEY_LIFETIME)
            key = self._service.get_user_delegation_key(now - dt.timedelta(minutes=5), until)
            self._delegation = (key, until)
        return self._delegation[0]
