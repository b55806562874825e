"""The object-store primitives on one Azure Blob container: what the core builds the driver from.

Writes are block blobs: a multipart upload is a *session* of staged blocks (:mod:`.blocks`),
completed by Put Block List. Azure cannot delete single staged blocks; committing a list
discards every other one, and deleting the blob discards them all. Blocks differ in size
(``uneven_parts``): a ``close()`` stages its tail as a short block, and a resume finds the
write again from the block list and the write's fences, which name the winning sessions in
their metadata (:meth:`AzureBucket.find_parts`) — no state object.

Every SDK call runs inside :func:`.errors.translated`; retries are the SDK's retry policy.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, cast

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.core.paging import ItemPaged
from azure.storage.blob import (
    BlobBlock,
    BlobClient,
    BlobProperties,
    BlobSasPermissions,
    BlobServiceClient,
    BlobType,
    ContainerClient,
    StorageStreamDownloader,
    UserDelegationKey,
    generate_blob_sas,
)

from layerstore_core.errors import StorageDriverError
from layerstore_core.objectstore import Bucket, ListPage, ObjectInfo, Part, fence

from .blocks import (
    MAX_BLOCKS,
    Block,
    Fence,
    block_size,
    fence_metadata,
    new_session,
    parse_fence,
    parse_fence_content,
    session_of,
    write_chain,
)
from .errors import error_code, translated

#: Azure's limit on sub-requests in one Blob Batch.
BATCH_SIZE = 256
#: How long ``copy`` waits for a pending server-side copy before giving up.
COPY_TIMEOUT = 3600.0
COPY_POLL_FIRST = 0.05
COPY_POLL_MAX = 2.0
#: A user delegation key is fetched for this long and reused until it nears expiry.
DELEGATION_KEY_LIFETIME = dt.timedelta(hours=6)


class AppendBlobFound(Exception):
    """Raised by :meth:`AzureBucket.find_parts` at an append blob (Distribution's upload)."""

    def __init__(self, blob: BlobClient) -> None:
        super().__init__(blob.blob_name)
        self.blob = blob


def wait_for_copy(
    get_properties: Callable[[], BlobProperties],
    copy_id: str | None,
    *,
    timeout: float = COPY_TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll a pending server-side copy until it succeeds; failed, aborted or timed out → error.

    Azure may finish Copy Blob asynchronously and the SDK has no waiter for it (nor a poller
    in ``start_copy_from_url``); this is a bounded poll of one operation's status, not a retry.
    """
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


class _Download:
    """A ranged download read front to back, one SDK chunk in memory at a time."""

    def __init__(self, downloader: StorageStreamDownloader[bytes]) -> None:
        self._chunks = downloader.chunks()
        self._pending = memoryview(b"")

    def _next_chunk(self) -> bool:
        with translated():  # a blob replaced between chunks fails its If-Match: 412
            chunk = next(self._chunks, None)
        if chunk is None:
            return False
        self._pending = memoryview(chunk)
        return True

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            out = [bytes(self._pending)]
            while self._next_chunk():
                out.append(bytes(self._pending))
            self._pending = memoryview(b"")
            return b"".join(out)
        while not self._pending:
            if not self._next_chunk():
                return b""
        piece = bytes(self._pending[:size])
        self._pending = self._pending[size:]
        return piece

    def close(self) -> None:
        self._pending = memoryview(b"")


class AzureBucket(Bucket):
    """One container through the SDK; ``owns`` says whether :meth:`close` closes the client."""

    delete_batch: ClassVar[int] = BATCH_SIZE
    uneven_parts: ClassVar[bool] = True
    max_parts: ClassVar[int] = MAX_BLOCKS

    def __init__(
        self,
        container: ContainerClient,
        *,
        service: BlobServiceClient | None,
        chunksize: int,
        maxconcurrency: int,
        redirectexpiry: int,
        owns: bool,
    ) -> None:
        self.container = container
        self.service = service
        self.chunksize = chunksize
        self.max_concurrency = maxconcurrency
        self.redirectexpiry = redirectexpiry
        self._owns = owns
        self._delegation: tuple[UserDelegationKey, dt.datetime] | None = None

    def store_id(self) -> str:
        return f"azure:{self.container.url}"

    def part_size(self, number: int) -> int:
        return block_size(number - 1, self.chunksize)

    def _blob(self, key: str) -> BlobClient:
        return self.container.get_blob_client(key)

    # -- objects ------------------------------------------------------------------------------

    def head(self, key: str) -> ObjectInfo | None:
        """Committed blobs only: one with staged blocks alone is not there yet (404)."""
        try:
            with translated():
                props = self._blob(key).get_blob_properties()
        except StorageDriverError as exc:
            if isinstance(exc.__cause__, ResourceNotFoundError):
                return None
            raise
        return ObjectInfo(key, props.size, props.last_modified, props.etag)

    def get(self, key: str, start: int = 0) -> _Download:
        with translated():
            return _Download(self._blob(key).download_blob(offset=start or None))

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """One Put Blob (the SDK splits past ``max_single_put_size``); drops staged blocks."""
        body = data if isinstance(data, bytes) else bytes(data)  # the SDK iterates others
        with translated():
            self._blob(key).upload_blob(
                body, blob_type=BlobType.BLOCKBLOB, length=len(body), overwrite=True
            )

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Put Blob with ``If-None-Match: *`` (the SDK's ``overwrite=False``).

        A one-writer fence also names its winning session in the blob's metadata, so that a
        resume tells the winners from one listing (:meth:`find_parts`).
        """
        metadata = fence_metadata(data, key) if data.startswith(fence.PART_MAGIC) else None
        try:
            with translated():
                self._blob(key).upload_blob(
                    data, blob_type=BlobType.BLOCKBLOB, length=len(data), overwrite=False,
                    metadata=metadata,
                )  # fmt: skip
        except StorageDriverError as exc:
            if isinstance(exc.__cause__, ResourceExistsError):
                return False
            raise
        return True

    def list_page(self, prefix: str, *, delimiter: bool, token: str | None) -> ListPage:
        pager: ItemPaged[Any]
        with translated():
            if delimiter:
                pager = self.container.walk_blobs(name_starts_with=prefix, delimiter="/")
            else:
                pager = self.container.list_blobs(name_starts_with=prefix)
            pages = pager.by_page(continuation_token=token)
            items = list(next(pages, []))
            objects = [
                ObjectInfo(i.name, i.size, i.last_modified, i.etag)
                for i in items
                if isinstance(i, BlobProperties)
            ]
            prefixes = [i.name for i in items if not isinstance(i, BlobProperties)]
            return ListPage(objects, prefixes, cast(Any, pages).continuation_token or None)

    def unfinished_keys(self, prefix: str) -> Iterator[str]:
        """Every blob below ``prefix``, those with only staged blocks included (one listing)."""
        with translated():
            for item in self.container.list_blobs(
                name_starts_with=prefix, include=["uncommittedblobs"]
            ):
                yield item.name

    def delete_many(self, keys: Sequence[str]) -> None:
        with translated():
            if len(keys) == 1:  # one request instead of a batch envelope
                try:
                    self.container.delete_blob(keys[0], delete_snapshots="include")
                except ResourceNotFoundError:
                    pass  # deleted meanwhile: the goal is reached
                return
            results = self.container.delete_blobs(
                *keys, delete_snapshots="include", raise_on_any_failure=False
            )
            failed = [r for r in results if r.status_code not in (200, 202, 404)]
        if failed:
            raise StorageDriverError(
                f"{len(failed)} of {len(keys)} deletes failed (HTTP {failed[0].status_code})"
            )

    def copy(self, source: ObjectInfo, dest: str) -> None:
        """Server-side Copy Blob, polled to completion (Azure may copy asynchronously)."""
        src, dst = self._blob(source.key), self._blob(dest)
        with translated():
            started = dst.start_copy_from_url(src.url)
            if started.get("copy_status") != "success":
                wait_for_copy(dst.get_blob_properties, str(started.get("copy_id") or "") or None)

    # -- multipart uploads: sessions of staged blocks -----------------------------------------

    def _block_list(self, key: str) -> tuple[list[BlobBlock], list[BlobBlock]] | None:
        """The committed and the staged blocks at ``key``, or None when nothing is there.

        An append blob has no block list: Distribution's upload, found by :class:`AppendBlobFound`.
        """
        blob = self._blob(key)
        try:
            with translated():
                committed, uncommitted = blob.get_block_list("all")
        except StorageDriverError as exc:
            if isinstance(exc.__cause__, ResourceNotFoundError):
                return None
            if error_code(exc.__cause__) == "InvalidBlobType":
                raise AppendBlobFound(blob) from None
            raise
        return list(committed), list(uncommitted)

    def start_upload(self, key: str) -> str:
        """A new session (a random token); an append blob at ``key`` is replaced."""
        try:
            self._block_list(key)
        except AppendBlobFound as found:  # reached by a fresh write only: find_parts raises
            with translated():
                found.blob.delete_blob()
        return new_session()

    def upload_part(self, key: str, upload_id: str, number: int, data: memoryview) -> Part:
        block = Block(number - 1, session_of(upload_id), len(data))
        with translated():
            # The SDK sends any buffer; bytes() would copy a whole block for the type checker.
            self._blob(key).stage_block(block.id, cast(bytes, data), length=len(data))
        return Part(number, len(data), block.id)

    def complete_upload(
        self, key: str, upload_id: str, parts: Sequence[Part], last: memoryview
    ) -> None:
        """Stage ``last`` as the final block, then Put Block List (dropping all other blocks)."""
        ids = [p.etag for p in parts]
        if last.nbytes:
            ids.append(self.upload_part(key, upload_id, len(parts) + 1, last).etag)
        with translated():
            self._blob(key).commit_block_list([BlobBlock(i) for i in ids])

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Drop the staged blocks (commit an empty list), then delete the blob, as Distribution."""
        blob = self._blob(key)
        with translated():
            blob.commit_block_list([])
            try:
                blob.delete_blob()
            except ResourceNotFoundError:
                pass

    def find_parts(self, key: str) -> tuple[str, list[Part]] | None:
        """The write at ``key`` rebuilt from its block list and fences, for a new session.

        Committed blocks of ours count as parts (appending reuses them); content without our
        ids (a single Put Blob, another tool's blocks) gives None, and the core restages it.
        Only the sessions that won their advance are followed (:func:`.blocks.write_chain`).
        """
        blocks = self._block_list(key)
        if blocks is None:
            return None
        committed, staged = blocks
        chain = write_chain(committed, staged, self._fences(key) if staged else {})
        if not chain:
            return None
        return new_session(), [Part(b.index + 1, b.size, b.id) for b in chain]

    def _fences(self, key: str) -> dict[int, Fence]:
        """The winner of each fenced advance of the write at ``key`` (one listing).

        A fence without our metadata (written by an older version) is read once.
        """
        prefix = key + fence.FENCE_INFIX
        found: dict[int, Fence] = {}
        with translated():
            for item in self.container.list_blobs(name_starts_with=prefix, include=["metadata"]):
                offset = item.name[len(prefix) :]
                if not offset.isdigit():
                    continue
                won = parse_fence(item.metadata)
                if won is None:
                    won = self._read_fence(item.name)
                if won is not None:
                    found[int(offset)] = won
        return found

    def _read_fence(self, name: str) -> Fence | None:
        """The winner a fence's content names (fences written before they carried metadata)."""
        try:
            raw = self._blob(name).download_blob().readall()
        except ResourceNotFoundError:
            return None  # cleared meanwhile: a commit or a fresh write
        session, part, _ = fence.decode_part(bytes(raw), name)
        return parse_fence_content(session, part)

    # -- the rest ----------------------------------------------------------------------------

    def signed_url(self, key: str, method: str) -> str | None:
        """A read-only SAS URL valid for ``redirectexpiry`` seconds (GET and HEAD both read)."""
        blob = self._blob(key)
        now = dt.datetime.now(dt.UTC)
        expiry = now + dt.timedelta(seconds=self.redirectexpiry)
        credential = self.container.credential  # the SDK's shared key, or a token credential
        signing: dict[str, Any]
        if getattr(credential, "account_key", None):
            signing = {"account_key": credential.account_key}
        elif hasattr(credential, "get_token") and self.service is not None:
            with translated():
                signing = {"user_delegation_key": self._delegation_key(now, expiry)}
        else:
            return None
        sas = generate_blob_sas(
            account_name=self.container.account_name or "",
            container_name=self.container.container_name,
            blob_name=key,
            permission=BlobSasPermissions(read=True),
            expiry=expiry,
            **signing,
        )
        return f"{blob.url}?{sas}"

    def _delegation_key(self, now: dt.datetime, expiry: dt.datetime) -> UserDelegationKey:
        """A user delegation key valid past ``expiry``, fetched again only when it runs out."""
        assert self.service is not None
        if self._delegation is None or self._delegation[1] < expiry:
            until = max(expiry, now + DELEGATION_KEY_LIFETIME)
            key = self.service.get_user_delegation_key(now - dt.timedelta(minutes=5), until)
            self._delegation = (key, until)
        return self._delegation[0]

    def close(self) -> None:
        if self._owns:
            (self.service or self.container).close()

