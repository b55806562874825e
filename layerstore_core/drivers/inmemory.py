"""The ``inmemory`` driver: a process-local store for tests and throwaway registries.

It is the object-store base (:mod:`layerstore_core.objectstore`) over a dict: the same listing,
directory, reader and part-writer code the cloud drivers run, so the conformance suite checks
that code without an emulator. Objects are immutable ``bytes`` (a reader shares them without a
copy); a write collects its parts and joins them once, at commit (linear, where Distribution's
inmemory driver re-copies on every write and goes quadratic).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import itertools
import threading
from collections.abc import Sequence
from typing import ClassVar

from ..errors import InvalidOffsetError, PathNotFoundError, StorageDriverError
from ..objectstore import Bucket, ByteStream, ListPage, ObjectInfo, ObjectStoreDriver, Part

#: Part size of the writer: small enough that tests cross parts, large enough to be cheap.
PART_SIZE = 5 * 2**20
#: Keys per listing page, as S3 pages (so pagination is exercised too).
PAGE_SIZE = 1000


@dataclasses.dataclass(frozen=True)
class InMemoryParams:
    """The inmemory driver takes no parameters."""


@dataclasses.dataclass(frozen=True)
class _Object:
    data: bytes
    modified: dt.datetime
    etag: str


class MemoryBucket(Bucket):
    """The object-store primitives over a dict, guarded by one lock."""

    delete_batch: ClassVar[int] = 1000
    #: Parts are kept by number with a receipt each, and completion joins the listed ones
    #: when their receipts match, as S3 does (a part sent again under one number replaces it).
    sparse_part_numbers: ClassVar[bool] = True

    def __init__(self) -> None:
        self._objects: dict[str, _Object] = {}
        #: Upload id -> part number -> (receipt, bytes).
        self._uploads: dict[str, dict[int, tuple[str, bytes]]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def part_size(self, number: int) -> int:
        return PART_SIZE

    def store_id(self) -> str:
        return f"inmemory:{id(self)}"

    def head(self, key: str) -> ObjectInfo | None:
        with self._lock:
            obj = self._objects.get(key)
        return None if obj is None else ObjectInfo(key, len(obj.data), obj.modified, obj.etag)

    def get(self, key: str, start: int = 0) -> ByteStream:
        with self._lock:
            obj = self._objects.get(key)
        if obj is None:
            raise PathNotFoundError()
        if start > len(obj.data):
            raise InvalidOffsetError(offset=start)
        return io.BytesIO(memoryview(obj.data)[start:])

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        self._store(key, bytes(data))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self._store(key, bytes(data), only_new=True)

    def _store(self, key: str, data: bytes, *, only_new: bool = False) -> bool:
        with self._lock:
            self._check_no_file_above(key)
            if only_new and key in self._objects:
                return False
            self._objects[key] = _Object(data, dt.datetime.now(dt.UTC), str(next(self._ids)))
        return True

    def _check_no_file_above(self, key: str) -> None:
        parts = key.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in self._objects:
                raise StorageDriverError("a parent of the path is a file")

    def list_page(self, prefix: str, *, delimiter: bool, token: str | None) -> ListPage:
        with self._lock:
            keys = sorted(k for k in self._objects if k.startswith(prefix) and k > (token or ""))
            objects: list[ObjectInfo] = []
            prefixes: set[str] = set()
            last: str | None = None
            for key in keys:
                if len(objects) + len(prefixes) == PAGE_SIZE:
                    return ListPage(objects, sorted(prefixes), last)
                rest = key[len(prefix) :]
                if delimiter and "/" in rest:
                    prefixes.add(prefix + rest.split("/", 1)[0] + "/")
                else:
                    obj = self._objects[key]
                    objects.append(ObjectInfo(key, len(obj.data), obj.modified, obj.etag))
                last = key
        return ListPage(objects, sorted(prefixes), None)

    def delete_many(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._objects.pop(key, None)

    def copy(self, source: ObjectInfo, dest: str) -> None:
        self._store(dest, self._source_data(source))

    def copy_if_absent(self, source: ObjectInfo, dest: str) -> bool:
        return self._store(dest, self._source_data(source), only_new=True)

    def _source_data(self, source: ObjectInfo) -> bytes:
        with self._lock:
            obj = self._objects.get(source.key)
        if obj is None or obj.etag != source.etag:
            raise PathNotFoundError("the source changed or went away during the copy")
        return obj.data

    def start_upload(self, key: str) -> str:
        upload_id = f"{key}#{next(self._ids)}"
        with self._lock:
            self._uploads[upload_id] = {}
        return upload_id

    def upload_part(self, key: str, upload_id: str, number: int, data: memoryview) -> Part:
        with self._lock:
            parts = self._uploads.get(upload_id)
            if parts is None:
                raise PathNotFoundError(f"no such upload {upload_id}")
            receipt = f"{upload_id}/{number}/{next(self._ids)}"
            parts[number] = (receipt, bytes(data))
        return Part(number, data.nbytes, receipt)

    def complete_upload(
        self, key: str, upload_id: str, parts: Sequence[Part], last: memoryview
    ) -> str | None:
        with self._lock:
            stored = self._uploads.get(upload_id)
            if stored is None:
                raise PathNotFoundError(f"no such upload {upload_id}")
            numbers = [p.number for p in parts]
            if numbers != sorted(set(numbers)) or (numbers and numbers[-1] >= self.max_parts):
                raise StorageDriverError(f"upload {upload_id}: parts out of order")
            if any(stored.get(p.number, ("", b""))[0] != p.etag for p in parts):
                raise StorageDriverError(f"upload {upload_id}: a part is missing or was replaced")
            data = b"".join([*(stored[p.number][1] for p in parts), bytes(last)])
            del self._uploads[upload_id]
        self._store(key, data)
        with self._lock:
            return self._objects[key].etag

    def abort_upload(self, key: str, upload_id: str) -> None:
        with self._lock:
            self._uploads.pop(upload_id, None)


class InMemoryDriver(ObjectStoreDriver[MemoryBucket]):
    """A thread-safe in-process store; nothing survives the process."""

    name = "inmemory"
    Params = InMemoryParams

    def __init__(self, params: InMemoryParams | None = None) -> None:
        super().__init__(MemoryBucket(), "")
