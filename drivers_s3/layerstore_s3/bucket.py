"""The S3 primitives of the object-store base: one boto3 call (or a few) per method.

Every call raises through :func:`.errors.translated`; retries are botocore's (set where the
client is built, in ``driver.py``). S3 specifics kept here:

* parts are uniform (``chunksize``; R2 and others reject uneven parts) and at least
  :data:`~.config.MIN_PART_SIZE`; each part carries a CRC32 checksum (as boto3's
  TransferManager does), which S3 verifies and combines at completion;
* ``copy`` is one CopyObject conditional on the source's ETag, or above
  ``multipartcopythresholdsize`` a multipart copy (UploadPartCopy ranges in parallel);
  ``copy_if_absent`` completes a multipart copy with ``If-None-Match: *`` (a HEAD first for one
  CopyObject: moto ignores the condition there);
* every request that creates an object carries SSE/KMS, the storage class and the ACL — except
  that a writer's side objects (state, fences, part claims: small, short-lived) get no storage
  class, so an infrequent-access class does not bill them its minimum size and duration;
* part numbers need only ascend: a session continuing an upload sends under claimed numbers
  (``objectstore.partclaims``) and the final part is always number 10,000, which no one claims.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Final

from botocore.exceptions import BotoCoreError, ClientError

from layerstore_core.errors import PartNumbersExhaustedError, PathNotFoundError, StorageDriverError
from layerstore_core.objectstore import Bucket, ListPage, ObjectInfo, Part, is_side_key

from .config import MAX_PARTS, NO_STORAGE_CLASS, S3Params
from .errors import ERROR_TABLE, error_code, raise_translated, translated

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

CONTENT_TYPE = "application/octet-stream"
#: Per-part checksum of our uploads: S3 verifies each part and combines them at completion.
CHECKSUM_ALGORITHM: Final = "CRC32"


#: The codes of a refused conditional write (409: a concurrent one is in progress).
REFUSED_CONDITION_CODES: Final = ("PreconditionFailed", "412", "ConditionalRequestConflict")


class _DestinationTakenError(Exception):
    """A copy conditional on its destination being absent found an object there."""


@contextmanager
def _refused_as_precondition(condition: dict[str, Any]) -> Iterator[None]:
    """Run a request; a refusal of its destination ``condition`` → _DestinationTakenError."""
    try:
        yield
    except ClientError as exc:
        if condition and error_code(exc) in REFUSED_CONDITION_CODES:
            raise _DestinationTakenError from exc
        raise_translated(exc)
    except BotoCoreError as exc:
        raise_translated(exc)


class S3Bucket(Bucket):
    """One S3 bucket through a boto3 client; keys are full object keys."""

    delete_batch: ClassVar[int] = 1000  # DeleteObjects' limit
    max_parts: ClassVar[int] = MAX_PARTS
    sparse_part_numbers: ClassVar[bool] = True

    def __init__(self, client: S3Client, params: S3Params, *, owns_client: bool) -> None:
        self.client = client
        self.params = params
        self.name = params.bucket
        self.max_concurrency = params.maxconcurrency
        self._owns_client = owns_client

    def part_size(self, number: int) -> int:
        return self.params.chunksize

    def store_id(self) -> str:
        return f"s3:{self.params.endpoint_url or self.client.meta.endpoint_url}/{self.name}"

    # -- objects ------------------------------------------------------------------------------

    def head(self, key: str) -> ObjectInfo | None:
        try:
            resp = self.client.head_object(Bucket=self.name, Key=key)
        except ClientError as exc:
            if ERROR_TABLE.get(error_code(exc)) is PathNotFoundError:
                return None
            raise_translated(exc)
        except BotoCoreError as exc:
            raise_translated(exc)
        _check_complete_head(resp, key)
        return ObjectInfo(key, resp["ContentLength"], resp["LastModified"], resp["ETag"])

    def get(self, key: str, start: int = 0) -> _Body:
        """One GetObject; S3's 416 for a range at or past the end is InvalidOffsetError."""
        extra: dict[str, Any] = {"Range": f"bytes={start}-"} if start else {}
        with translated():
            resp = self.client.get_object(Bucket=self.name, Key=key, **extra)
        _check_complete_head(resp, key)
        return _Body(resp["Body"])

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        args = self._object_args(storage_class=not is_side_key(key))
        with translated():
            self.client.put_object(
                Bucket=self.name, Key=key, Body=_body(data), ContentType=CONTENT_TYPE, **args
            )

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """One PutObject with ``If-None-Match: *``: S3 refuses it (412) when the key exists."""
        args = self._object_args(storage_class=not is_side_key(key))
        try:
            self.client.put_object(
                Bucket=self.name, Key=key, Body=data, ContentType=CONTENT_TYPE,
                IfNoneMatch="*", **args,
            )
        except ClientError as exc:
            if error_code(exc) in REFUSED_CONDITION_CODES:
                return False
            raise_translated(exc)
        except BotoCoreError as exc:
            raise_translated(exc)
        return True

    def list_page(self, prefix: str, *, delimiter: bool, token: str | None) -> ListPage:
        args: dict[str, Any] = {"Delimiter": "/"} if delimiter else {}
        if token is not None:
            args["ContinuationToken"] = token
        with translated():
            resp = self.client.list_objects_v2(Bucket=self.name, Prefix=prefix, **args)
        objects = [
            ObjectInfo(o["Key"], o["Size"], o["LastModified"], o.get("ETag"))
            for o in resp.get("Contents", [])
        ]
        prefixes = [p["Prefix"] for p in resp.get("CommonPrefixes", [])]
        more = resp.get("IsTruncated") and resp.get("NextContinuationToken")
        return ListPage(objects, prefixes, str(more) if more else None)

    def delete_many(self, keys: Sequence[str]) -> None:
        with translated():
            resp = self.client.delete_objects(
                Bucket=self.name, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
            )
        errors = resp.get("Errors", [])
        if errors:
            first = errors[0]
            raise StorageDriverError(
                f"S3 DeleteObjects failed for {len(errors)} keys, first {first.get('Key')}: "
                f"{first.get('Code')}"
            )

    def copy(self, source: ObjectInfo, dest: str) -> None:
        """CopyObject if the source still has its ETag; a multipart copy above the threshold.

        The copy gets a fresh full-object CRC32: a multipart source's composite checksum does
        not describe a single-part copy (moto even hands the old one to the reader).
        """
        if source.size > self.params.multipartcopythresholdsize:
            self._multipart_copy(source, dest, {})
            return
        match: Any = {"CopySourceIfMatch": source.etag} if source.etag else {}
        with translated():
            self.client.copy_object(
                Bucket=self.name, Key=dest, CopySource={"Bucket": self.name, "Key": source.key},
                ContentType=CONTENT_TYPE, MetadataDirective="REPLACE",
                ChecksumAlgorithm=CHECKSUM_ALGORITHM, **match, **self._object_args(),
            )

    def copy_if_absent(self, source: ObjectInfo, dest: str) -> bool:
        """A multipart copy completed with ``If-None-Match: *``: no HEAD first.

        S3 refuses the completion (412) atomically, and the copied parts are aborted. A single
        CopyObject looks first: S3 takes the condition there too, but stores that ignore it
        (moto does) would overwrite, and the registry relies on True meaning "was absent".
        """
        if source.size <= self.params.multipartcopythresholdsize:
            return super().copy_if_absent(source, dest)
        try:
            self._multipart_copy(source, dest, {"IfNoneMatch": "*"})
        except _DestinationTakenError:
            return False
        return True

    def _multipart_copy(self, source: ObjectInfo, dest: str, condition: dict[str, Any]) -> None:
        """UploadPartCopy in parallel ranges: the only server-side copy past 5 GiB."""
        size = source.size
        part = max(self.params.multipartcopychunksize, math.ceil(size / MAX_PARTS))
        spans = [(n + 1, first, min(first + part, size) - 1)
                 for n, first in enumerate(range(0, size, part))]
        with translated():
            upload_id = self.client.create_multipart_upload(
                Bucket=self.name, Key=dest, ContentType=CONTENT_TYPE, **self._object_args()
            )["UploadId"]
        match: Any = {"CopySourceIfMatch": source.etag} if source.etag else {}

        def copy_part(span: tuple[int, int, int]) -> CompletedPartTypeDef:
            number, first, last = span
            with translated():
                resp = self.client.upload_part_copy(
                    Bucket=self.name, Key=dest, UploadId=upload_id, PartNumber=number,
                    CopySource={"Bucket": self.name, "Key": source.key},
                    CopySourceRange=f"bytes={first}-{last}", **match,
                )
            return {"PartNumber": number, "ETag": resp["CopyPartResult"]["ETag"]}

        try:
            workers = min(self.params.multipartcopymaxconcurrency, len(spans))
            with ThreadPoolExecutor(workers, thread_name_prefix="s3-copy") as pool:
                parts = list(pool.map(copy_part, spans))
            with _refused_as_precondition(condition):
                self.client.complete_multipart_upload(
                    Bucket=self.name, Key=dest, UploadId=upload_id,
                    MultipartUpload={"Parts": parts}, **condition,
                )
        except BaseException:
            self.abort_upload(dest, upload_id)
            raise

    # -- multipart uploads -------------------------------------------------------------------

    def start_upload(self, key: str) -> str:
        with translated():
            return self.client.create_multipart_upload(
                Bucket=self.name, Key=key, ContentType=CONTENT_TYPE,
                ChecksumAlgorithm=CHECKSUM_ALGORITHM, **self._object_args(),
            )["UploadId"]

    def upload_part(self, key: str, upload_id: str, number: int, data: memoryview) -> Part:
        with translated():
            resp = self.client.upload_part(
                Bucket=self.name, Key=key, UploadId=upload_id, PartNumber=number,
                Body=_body(data),
                ContentLength=data.nbytes, ChecksumAlgorithm=CHECKSUM_ALGORITHM,
            )
        return Part(number, data.nbytes, resp["ETag"], resp.get("ChecksumCRC32", ""))

    def complete_upload(
        self, key: str, upload_id: str, parts: Sequence[Part], last: memoryview
    ) -> str | None:
        """The short final part (if any) goes up first, then one CompleteMultipartUpload."""
        done = list(parts)
        if done and done[-1].number >= self.max_parts:  # a state from before claims
            raise PartNumbersExhaustedError(f"part {self.max_parts} is taken: no final part")
        if last.nbytes or not done:
            # the last number: never claimed by a session (objectstore.partclaims)
            done.append(self.upload_part(key, upload_id, self.max_parts, last))
        listed: list[CompletedPartTypeDef] = []
        for part in done:
            entry: CompletedPartTypeDef = {"PartNumber": part.number, "ETag": part.etag}
            if part.checksum:
                entry["ChecksumCRC32"] = part.checksum
            listed.append(entry)
        with translated():
            resp = self.client.complete_multipart_upload(
                Bucket=self.name, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": listed},
            )
        return resp.get("ETag")

    def abort_upload(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.name, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if ERROR_TABLE.get(error_code(exc)) is not PathNotFoundError:
                raise_translated(exc)
        except BotoCoreError as exc:
            raise_translated(exc)

    # -- the rest ----------------------------------------------------------------------------

    def signed_url(self, key: str, method: str) -> str | None:
        """A SigV4-presigned GET or HEAD URL, valid for ``redirectexpiry`` seconds."""
        operation = "get_object" if method == "GET" else "head_object"
        with translated():
            return self.client.generate_presigned_url(
                operation, Params={"Bucket": self.name, "Key": key},
                ExpiresIn=self.params.redirectexpiry, HttpMethod=method,
            )

    def close(self) -> None:
        """Release the connection pool, unless the client was handed in by the user."""
        if self._owns_client:
            self.client.close()

    def _object_args(self, *, storage_class: bool = True) -> dict[str, Any]:
        """SSE, storage class and ACL for every request that creates an object."""
        p = self.params
        args: dict[str, Any] = {}
        if p.encrypt:
            args["ServerSideEncryption"] = "aws:kms" if p.keyid else "AES256"
            if p.keyid:
                args["SSEKMSKeyId"] = p.keyid
        if storage_class and p.storageclass != NO_STORAGE_CLASS:
            args["StorageClass"] = p.storageclass
        if p.objectacl:
            args["ACL"] = p.objectacl
        return args


def _check_complete_head(resp: Any, key: str) -> None:
    """Refuse a response whose headers were cut short (a connection dropped mid-head).

    http.client takes a head ended by EOF for a complete one, so a GetObject cut there reads
    as an empty body with no ``Content-Length`` to check it against (found with the
    fault-injecting proxy of tests/faultproxy.py): S3 always sends the length and the ETag.
    """
    if resp.get("ContentLength") is None or resp.get("ETag") is None:
        raise StorageDriverError(f"S3 response for {key!r} was cut short (no Content-Length)",
                                 driver="s3")


class _Body:
    """A GetObject body whose read errors come out translated (a dropped connection, say)."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def read(self, size: int = -1, /) -> bytes:
        with translated():
            data: bytes = self._body.read(None if size < 0 else size)
        return data

    def close(self) -> None:
        self._body.close()


def _body(data: bytes | bytearray | memoryview) -> Any:
    """A request body botocore takes, without copying: it refuses a bare memoryview.

    Typed Any: botocore takes a file-like body, its stubs list only bytes.
    """
    if not isinstance(data, memoryview):
        return data
    if isinstance(data.obj, bytes | bytearray) and data.nbytes == len(data.obj):
        return data.obj  # a whole part buffer: botocore sends it as it is
    return _ViewReader(data)


class _ViewReader(io.RawIOBase):
    """A seekable file over a memoryview (botocore seeks back to retry and to checksum)."""

    def __init__(self, view: memoryview) -> None:
        self._view = view.cast("B")
        self._pos = 0

    def __len__(self) -> int:
        return self._view.nbytes

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        n = max(0, min(out.nbytes, self._view.nbytes - self._pos))
        out[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._view.nbytes}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos
