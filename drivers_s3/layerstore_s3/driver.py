"""The S3 storage driver (boto3): the contract's hooks mapped onto S3 requests.

Path ``/a/b`` is key ``<rootdirectory>/a/b``; directories are implied by key prefixes. The
writer's side objects (see ``writer.py``) live under ``<rootdirectory>/~layerstore-s3/``, a name
outside the path grammar, so ``list``/``walk``/``stat`` skip it and no contract path reaches it.
Retries and timeouts are botocore's (``standard`` retry mode), set once in :func:`make_client`.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from layerstore_core.driver import (
    EPOCH,
    FileInfo,
    FileWriter,
    StorageDriver,
    join_path,
    validate_path,
    walk_order_key,
)
from layerstore_core.errors import (
    InvalidOffsetError,
    InvalidPathError,
    PathNotFoundError,
    StorageDriverError,
)

from .config import MAX_PARTS, NO_STORAGE_CLASS, S3Params
from .errors import ERROR_TABLE, error_code, raise_translated, translated
from .writer import S3Writer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, ObjectIdentifierTypeDef

log = logging.getLogger(__name__)

#: Top-level name (outside the path grammar) of the driver's own bookkeeping objects.
SIDE_DIR = "~layerstore-s3"
#: DeleteObjects takes at most this many keys per request.
DELETE_BATCH = 1000
DEFAULT_REGION = "us-east-1"
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60
#: Reads from the GET stream are buffered in blocks of this size.
READ_BLOCK = 1 << 20


def make_client(params: S3Params) -> S3Client:
    """Build a boto3 S3 client for ``params`` (SigV4, botocore's standard retries and timeouts).

    TLS verification uses botocore's own rules (``AWS_CA_BUNDLE`` included) unless
    ``skipverify``; a plain-http endpoint never touches the bundle.
    """
    session = boto3.session.Session(
        aws_access_key_id=params.accesskey,
        aws_secret_access_key=params.secretkey,
        aws_session_token=params.sessiontoken,
        region_name=params.region,
    )
    config = Config(
        signature_version="s3v4",
        retries={"mode": "standard", "total_max_attempts": params.maxretries + 1},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        max_pool_connections=max(10, params.maxconcurrency * 2,
                                 min(params.multipartcopymaxconcurrency, 100)),
        s3={"addressing_style": "path" if params.forcepathstyle else "auto"},
        user_agent_extra="layerstore-s3",
    )
    return session.client(
        "s3",
        region_name=session.region_name or DEFAULT_REGION,
        endpoint_url=params.endpoint_url,
        use_ssl=params.secure,  # only for AWS's own endpoints; a regionendpoint has a scheme
        verify=False if params.skipverify else None,
        config=config,
    )


def visible(relative: str) -> bool:
    """Whether a key below a prefix is a contract path (not a side object or a dir marker)."""
    try:
        validate_path("/" + relative)
    except InvalidPathError:
        return False
    return True


class _BodyStream(io.RawIOBase):
    """A raw stream over a GET response body, so the reader never holds the whole object."""

    def __init__(self, body: Any, path: str) -> None:
        self._body = body
        self._path = path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            with translated(self._path):
                chunk = self._body.read(len(view))
        except StorageDriverError as exc:  # raised outside the core's wrapper: name ourselves
            exc.driver = exc.driver or S3Driver.name
            raise
        view[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3Driver(StorageDriver):
    """Stores files as objects in one bucket under ``rootdirectory``."""

    name = "s3"
    Params = S3Params

    def __init__(self, params: S3Params) -> None:
        self.params = params
        self._bucket = params.bucket
        self._prefix = params.key_prefix
        self._client = make_client(params)

    # -- keys --------------------------------------------------------------------------------


    @property
    def preferred_chunk_size(self) -> int:
        """One part of the writer: whole parts are what the writer sends without buffering."""
        return self.params.chunksize

    def _key(self, path: str) -> str:
        return self._prefix + path.lstrip("/")

    def _dir_prefix(self, path: str) -> str:
        return self._prefix if path == "/" else self._key(path) + "/"

    def _tail_key(self, path: str) -> str:
        """Where a closed writer keeps its tail (bytes short of a full part)."""
        return f"{self._prefix}{SIDE_DIR}/tails/{path.lstrip('/')}"

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

    # -- whole objects -----------------------------------------------------------------------

    def _get_content(self, path: str) -> bytes:
        with translated(path):
            resp = self._client.get_object(Bucket=self._bucket, Key=self._key(path))
            return resp["Body"].read()

    def _put_content(self, path: str, data: bytes) -> None:
        with translated(path):
            self._client.put_object(
                Bucket=self._bucket, Key=self._key(path), Body=data,
                ContentType="application/octet-stream", **self._object_args(),
            )

    def _head(self, path: str) -> dict[str, Any] | None:
        """HeadObject's response, or None when there is no object at ``path``."""
        try:
            return dict(self._client.head_object(Bucket=self._bucket, Key=self._key(path)))
        except ClientError as exc:
            if ERROR_TABLE.get(error_code(exc)) is PathNotFoundError:
                return None
            raise_translated(exc, path)
        except BotoCoreError as exc:
            raise_translated(exc, path)

    # -- reader ------------------------------------------------------------------------------

    def _reader(self, path: str, offset: int) -> IO[bytes]:
        args: dict[str, Any] = {"Bucket": self._bucket, "Key": self._key(path)}
        if offset:
            args["Range"] = f"bytes={offset}-"
        try:
            resp = self._client.get_object(**args)
        except ClientError as exc:
            if ERROR_TABLE.get(error_code(exc)) is InvalidOffsetError:
                return self._reader_past_end(path, offset)
            raise_translated(exc, path)
        except BotoCoreError as exc:
            raise_translated(exc, path)
        return io.BufferedReader(_BodyStream(resp["Body"], path), READ_BLOCK)

    def _reader_past_end(self, path: str, offset: int) -> IO[bytes]:
        """S3 answers 416 for a range starting at the size: that offset is empty, later is bad."""
        head = self._head(path)
        if head is None:
            raise PathNotFoundError(path=path)
        if offset == head["ContentLength"]:
            return io.BytesIO(b"")
        raise InvalidOffsetError(path=path, offset=offset)

    # -- writer ------------------------------------------------------------------------------

    def _writer(self, path: str, append: bool) -> FileWriter:
        if append:
            return S3Writer.resume(self, path)
        return S3Writer.start(self, path)

    def _pending_uploads(self, key: str, *, exact: bool) -> list[dict[str, Any]]:
        """Unfinished multipart uploads at ``key`` (and below it unless ``exact``), oldest first."""
        found: list[dict[str, Any]] = []
        with translated(key):
            pages = self._client.get_paginator("list_multipart_uploads")
            for page in pages.paginate(Bucket=self._bucket, Prefix=key):
                for upload in page.get("Uploads", []):
                    k = upload.get("Key", "")
                    if k == key or (not exact and k.startswith(key + "/")):
                        found.append(dict(upload))
        return sorted(found, key=lambda u: u["Initiated"])

    def _abort(self, key: str, upload_id: str) -> None:
        """Abort one multipart upload; one that is already gone is fine."""
        try:
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if ERROR_TABLE.get(error_code(exc)) is not PathNotFoundError:
                raise_translated(exc, key)
        except BotoCoreError as exc:
            raise_translated(exc, key)

    # -- metadata ----------------------------------------------------------------------------

    def _stat(self, path: str) -> FileInfo:
        if path == "/":
            return FileInfo(path, 0, EPOCH, True)
        head = self._head(path)
        if head is not None:
            return FileInfo(path, head["ContentLength"], head["LastModified"], False)
        with translated(path):
            resp = self._client.list_objects_v2(
                Bucket=self._bucket, Prefix=self._dir_prefix(path), MaxKeys=1
            )
        if not resp.get("KeyCount"):
            raise PathNotFoundError(path=path)
        return FileInfo(path, 0, EPOCH, True)

    def _list(self, path: str) -> list[str]:
        prefix = self._dir_prefix(path)
        names: set[str] = set()
        with translated(path):
            pages = self._client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self._bucket, Prefix=prefix, Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    names.add(common["Prefix"][len(prefix) :].rstrip("/"))
                for obj in page.get("Contents", []):
                    names.add(obj["Key"][len(prefix) :])
        children = [join_path(path, name) for name in names if visible(name)]
        if not children and path != "/":
            raise PathNotFoundError(path=path)
        return children

    def _objects_under(self, prefix: str, path: str) -> Iterator[dict[str, Any]]:
        """Every object whose key starts with ``prefix`` (flat listing, 1,000 a page)."""
        with translated(path):
            pages = self._client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self._bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    yield dict(obj)

    def _walk(self, path: str) -> Iterator[FileInfo]:
        """One flat listing, implied directories added, sorted into the contract's order."""
        prefix = self._dir_prefix(path)
        entries: dict[str, FileInfo] = {}
        for obj in self._objects_under(prefix, path):
            relative = obj["Key"][len(prefix) :]
            if not visible(relative):
                continue
            parts = relative.split("/")
            for depth in range(1, len(parts)):
                directory = join_path(path, "/".join(parts[:depth]))
                entries.setdefault(directory, FileInfo(directory, 0, EPOCH, True))
            full = join_path(path, relative)
            entries[full] = FileInfo(full, obj["Size"], obj["LastModified"], False)
        if not entries and path != "/":
            raise PathNotFoundError(path=path)
        for name in sorted(entries, key=walk_order_key):
            yield entries[name]

    # -- move / delete -----------------------------------------------------------------------

    def _move(self, source: str, dest: str) -> None:
        head = self._head(source)
        if head is None:
            raise PathNotFoundError(path=source)
        if source == dest:  # copy-then-delete would delete the only copy
            return
        size = head["ContentLength"]
        # The copy gets a fresh full-object CRC32: a multipart source's composite checksum
        # does not describe a single-part copy (moto even hands the old one to the reader).
        if size > self.params.multipartcopythresholdsize:
            self._multipart_copy(source, dest, size, head["ETag"])
        else:
            with translated(dest):
                self._client.copy_object(
                    Bucket=self._bucket, Key=self._key(dest),
                    CopySource={"Bucket": self._bucket, "Key": self._key(source)},
                    CopySourceIfMatch=head["ETag"], ContentType="application/octet-stream",
                    MetadataDirective="REPLACE", ChecksumAlgorithm="CRC32",
                    **self._object_args(),
                )
        with translated(source):
            self._client.delete_object(Bucket=self._bucket, Key=self._key(source))

    def _multipart_copy(self, source: str, dest: str, size: int, etag: str) -> None:
        """UploadPartCopy in parallel ranges: the only server-side copy past 5 GiB."""
        part = max(self.params.multipartcopychunksize, math.ceil(size / MAX_PARTS))
        ranges = [(n + 1, start, min(start + part, size) - 1)
                  for n, start in enumerate(range(0, size, part))]
        key = self._key(dest)
        with translated(dest):
            upload_id = self._client.create_multipart_upload(
                Bucket=self._bucket, Key=key, ContentType="application/octet-stream",
                **self._object_args(),
            )["UploadId"]

        def copy_part(span: tuple[int, int, int]) -> CompletedPartTypeDef:
            number, first, last = span
            with translated(dest):
                resp = self._client.upload_part_copy(
                    Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumber=number,
                    CopySource={"Bucket": self._bucket, "Key": self._key(source)},
                    CopySourceRange=f"bytes={first}-{last}", CopySourceIfMatch=etag,
                )
            return {"PartNumber": number, "ETag": resp["CopyPartResult"]["ETag"]}

        try:
            workers = min(self.params.multipartcopymaxconcurrency, len(ranges))
            with ThreadPoolExecutor(workers, thread_name_prefix="s3-copy") as pool:
                parts = list(pool.map(copy_part, ranges))
            with translated(dest):
                self._client.complete_multipart_upload(
                    Bucket=self._bucket, Key=key, UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            self._abort(key, upload_id)
            raise

    def _delete(self, path: str) -> None:
        """Batched DeleteObjects of the key and ``key/...``; also drops unfinished writes there."""
        key = self._key(path)
        doomed = [obj["Key"] for obj in self._objects_under(key + "/", path)]
        if self._head(path) is not None:
            doomed.append(key)
        for upload in self._pending_uploads(key, exact=False):
            self._abort(upload["Key"], upload["UploadId"])
        tail = self._tail_key(path)
        tails = [obj["Key"] for obj in self._objects_under(tail, path)
                 if obj["Key"] == tail or obj["Key"].startswith(tail + "/")]
        self._delete_keys(tails, path)
        if not doomed:
            raise PathNotFoundError(path=path)
        self._delete_keys(doomed, path)

    def _delete_keys(self, keys: list[str], path: str) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            batch: list[ObjectIdentifierTypeDef] = [
                {"Key": k} for k in keys[start : start + DELETE_BATCH]
            ]
            with translated(path):
                resp = self._client.delete_objects(
                    Bucket=self._bucket, Delete={"Objects": batch, "Quiet": True}
                )
            errors = resp.get("Errors", [])
            if errors:
                first = errors[0]
                raise StorageDriverError(
                    f"S3 DeleteObjects failed for {len(errors)} keys, first {first.get('Key')}: "
                    f"{first.get('Code')}",
                    path=path,
                )

    # -- redirects ---------------------------------------------------------------------------

    def _redirect_url(self, path: str, method: str) -> str | None:
        """Presign a SigV4 GET or HEAD URL, valid for ``redirectexpiry`` seconds."""
        operation = "get_object" if method == "GET" else "head_object"
        with translated(path):
            return self._client.generate_presigned_url(
                operation, Params={"Bucket": self._bucket, "Key": self._key(path)},
                ExpiresIn=self.params.redirectexpiry, HttpMethod=method,
            )

    def close(self) -> None:
        """Release the client's connection pool."""
        self._client.close()
