"""The ``inmemory`` driver: a process-local store for tests and throwaway registries.

Files live in a flat dict (directories are implied by prefixes), guarded by one lock. Writers
append to a ``bytearray`` (amortized linear; Distribution's re-copies on every write, so its
pushes go quadratic) held apart from committed content until ``commit``. Committed content is
never mutated in place, so readers can share it without copying under the lock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import threading
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from ..driver import EPOCH, FileInfo, FileWriter, StorageDriver, join_path, walk_order_key
from ..errors import InvalidOffsetError, PathNotFoundError, StorageDriverError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


@dataclasses.dataclass(frozen=True)
class InMemoryParams:
    """The inmemory driver takes no parameters."""


@dataclasses.dataclass
class _Entry:
    data: bytes | bytearray
    modified: dt.datetime


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class InMemoryDriver(StorageDriver):
    """A thread-safe in-process store; nothing survives the process."""

    name = "inmemory"
    Params = InMemoryParams

    def __init__(self, params: InMemoryParams | None = None) -> None:
        self._files: dict[str, _Entry] = {}
        self._pending: dict[str, bytearray] = {}
        self._lock = threading.RLock()

    def _children_prefix(self, path: str) -> str:
        return "/" if path == "/" else path + "/"

    def _get_content(self, path: str) -> bytes:
        with self._lock:
            entry = self._files.get(path)
        if entry is None:
            raise PathNotFoundError(path=path)
        return bytes(entry.data)

    def _put_content(self, path: str, data: bytes) -> None:
        with self._lock:
            self._check_no_file_above(path)
            self._files[path] = _Entry(data, _now())

    def _check_no_file_above(self, path: str) -> None:
        parts = path.split("/")
        for i in range(2, len(parts)):
            if "/".join(parts[:i]) in self._files:
                raise StorageDriverError("a parent of the path is a file", path=path)

    def _reader(self, path: str, offset: int) -> IO[bytes]:
        with self._lock:
            entry = self._files.get(path)
        if entry is None:
            raise PathNotFoundError(path=path)
        if offset > len(entry.data):
            raise InvalidOffsetError(path=path, offset=offset)
        return io.BufferedReader(_ViewReader(memoryview(entry.data)[offset:]))

    def _writer(self, path: str, append: bool) -> FileWriter:
        with self._lock:
            if not append:
                buffer = bytearray()
            elif path in self._pending:
                buffer = self._pending[path]
            elif path in self._files:
                buffer = bytearray(self._files[path].data)
            else:
                raise PathNotFoundError(path=path)
            self._pending[path] = buffer
        return _InMemoryWriter(self, path, buffer)

    def _stat(self, path: str) -> FileInfo:
        with self._lock:
            entry = self._files.get(path)
            if entry is not None:
                return FileInfo(path, len(entry.data), entry.modified, False)
            prefix = self._children_prefix(path)
            times = [e.modified for p, e in self._files.items() if p.startswith(prefix)]
        if not times and path != "/":
            raise PathNotFoundError(path=path)
        return FileInfo(path, 0, max(times, default=EPOCH), True)

    def _list(self, path: str) -> list[str]:
        prefix = self._children_prefix(path)
        with self._lock:
            if path in self._files:
                raise PathNotFoundError("not a directory", path=path)
            names = {p[len(prefix) :].split("/", 1)[0] for p in self._files if p.startswith(prefix)}
        if not names and path != "/":
            raise PathNotFoundError(path=path)
        return [join_path(path, name) for name in names]

    def _walk(self, path: str) -> Iterator[FileInfo]:
        """Walk from one sorted snapshot: O(n log n), where list + stat per node is quadratic."""
        prefix = self._children_prefix(path)
        with self._lock:
            files = {p: e for p, e in self._files.items() if p.startswith(prefix)}
        if not files and path != "/":
            raise PathNotFoundError(path=path)
        infos: dict[str, FileInfo] = {}
        base = len(prefix.split("/")) - 1
        for p, entry in files.items():
            infos[p] = FileInfo(p, len(entry.data), entry.modified, False)
            parts = p.split("/")
            for i in range(base + 1, len(parts)):
                d = "/".join(parts[:i])
                seen = infos.get(d)
                if seen is None or (seen.is_dir and seen.modified < entry.modified):
                    infos[d] = FileInfo(d, 0, entry.modified, True)
        yield from sorted(infos.values(), key=lambda info: walk_order_key(info.path))

    def _move(self, source: str, dest: str) -> None:
        with self._lock:
            entry = self._files.get(source)
            if entry is None:
                raise PathNotFoundError(path=source)
            self._check_no_file_above(dest)
            self._delete_locked(dest)
            self._files[dest] = _Entry(entry.data, _now())
            del self._files[source]

    def _delete(self, path: str) -> None:
        with self._lock:
            if not self._delete_locked(path):
                raise PathNotFoundError(path=path)

    def _delete_locked(self, path: str) -> bool:
        prefix = path + "/"
        doomed = [p for p in self._files if p == path or p.startswith(prefix)]
        for p in doomed:
            del self._files[p]
        for p in [p for p in self._pending if p == path or p.startswith(prefix)]:
            del self._pending[p]
        return bool(doomed)


class _ViewReader(io.RawIOBase):
    """A stream over committed content without copying it (committed data is never mutated)."""

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        n = min(target.nbytes, self._view.nbytes - self._pos)
        target[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._view = memoryview(b"")
        super().close()


class _InMemoryWriter(FileWriter):
    def __init__(self, driver: InMemoryDriver, path: str, buffer: bytearray) -> None:
        super().__init__(driver.name, path, len(buffer))
        self._driver = driver
        self._buffer = buffer

    def _write(self, data: memoryview) -> None:
        with self._driver._lock:  # a buffer another writer committed is content: never touch it
            if self._driver._pending.get(self.path) is not self._buffer:
                raise StorageDriverError("the write was committed, cancelled or restarted")
            self._buffer += data

    def _close(self) -> None:
        """Do nothing: the buffer already lives in the driver's pending table."""

    def _commit(self) -> None:
        with self._driver._lock:
            self._driver._check_no_file_above(self.path)
            if self._driver._pending.get(self.path) is not self._buffer:
                raise StorageDriverError("the write was committed, cancelled or restarted")
            del self._driver._pending[self.path]
            self._driver._delete_locked(self.path)
            self._driver._files[self.path] = _Entry(self._buffer, _now())

    def _cancel(self) -> None:
        with self._driver._lock:
            if self._driver._pending.get(self.path) is self._buffer:
                del self._driver._pending[self.path]

    def _release(self) -> None:
        """Nothing to free: the buffer belongs to the driver's pending table."""
