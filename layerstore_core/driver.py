"""The storage-driver contract: the one abstract class every driver implements.

Public methods of :class:`StorageDriver` and :class:`FileWriter` are final. They validate the
path (the grammar below, declared once) and offsets, stamp errors with the driver's name and the
path, wrap stray backend exceptions in :class:`StorageDriverError`, and then call a protected hook
(``_get_content``, ``_writer``, ...) that the driver implements.

Paths are absolute, ``/``-separated, components ``[A-Za-z0-9._-]+``, no trailing slash and no
``.`` or ``..`` component. ``/`` itself is accepted only where a directory makes sense
(``stat``, ``list``, ``walk``).
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import enum
import io
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, ClassVar, TypeVar, cast, final

from . import observe
from .errors import (
    InvalidOffsetError,
    InvalidPathError,
    PathNotFoundError,
    StorageDriverError,
    UnsupportedMethodError,
    WriterClosedError,
)
from .params import parse_params

log = logging.getLogger(__name__)

PATH_PATTERN = re.compile(r"^(/[A-Za-z0-9._-]+)+$")
ROOT = "/"

_T = TypeVar("_T")


def validate_path(path: object, *, allow_root: bool = False) -> str:
    """Return ``path`` if it is a contract path, else raise :class:`InvalidPathError`."""
    if not isinstance(path, str):
        raise InvalidPathError(f"path must be a str, not {type(path).__name__}", path=repr(path))
    if allow_root and path == ROOT:
        return path
    if not PATH_PATTERN.match(path) or any(part in (".", "..") for part in path.split("/")):
        raise InvalidPathError("invalid path", path=path)
    return path


_COMPONENT = re.compile(r"^[A-Za-z0-9._-]+$")


def is_component(name: str) -> bool:
    """Whether ``name`` can be one component of a contract path (the one child-name rule).

    Listings report only such names: side objects (``~…``), directory markers (``a/``) and
    ``.``/``..`` entries another tool made are never children.
    """
    return name not in (".", "..") and _COMPONENT.match(name) is not None


def join_path(parent: str, name: str) -> str:
    """Join a directory path and a child name (``/`` + ``a`` → ``/a``)."""
    return f"{parent.rstrip('/')}/{name}"


@dataclasses.dataclass(frozen=True, slots=True)
class FileInfo:
    """What ``stat`` and ``walk`` report about one path."""

    path: str
    size: int
    modified: dt.datetime
    is_dir: bool


def _stamp(exc: StorageDriverError, driver: str, path: str | None) -> StorageDriverError:
    if exc.driver is None:
        exc.driver = driver
    if exc.path is None:
        exc.path = path
    return exc


def _guarded(driver: str, path: str | None, call: Callable[[], _T]) -> _T:
    """Run one hook call, stamping our errors and wrapping anything else, exactly once."""
    try:
        return call()
    except StorageDriverError as exc:
        raise _stamp(exc, driver, path) from exc.__cause__
    except Exception as exc:  # a backend failure the driver did not translate
        raise StorageDriverError(f"{type(exc).__name__}: {exc}", driver=driver, path=path) from exc


class GuardedReader(io.BufferedIOBase):
    """The stream ``reader()`` hands out: errors raised while reading are typed and stamped.

    Every driver's stream goes through it, so an I/O error in the middle of a pull names the
    driver and the path like any other call (a bare ``OSError`` from a file names neither).
    """

    def __init__(self, inner: IO[bytes], driver: str, path: str) -> None:
        super().__init__()
        self._inner = inner
        self._driver = driver
        self._path = path

    def _guard(self, call: Callable[[], _T]) -> _T:
        if self.closed:
            raise ValueError("I/O operation on closed stream")
        return _guarded(self._driver, self._path, call)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._guard(self._inner.seekable)

    def read(self, size: int | None = -1, /) -> bytes:
        return self._guard(lambda: self._inner.read(-1 if size is None else size))

    def read1(self, size: int = -1, /) -> bytes:
        read1 = getattr(self._inner, "read1", self._inner.read)
        return self._guard(lambda: bytes(read1(size)))

    def readinto(self, buffer: Any, /) -> int:
        return self._guard(lambda: _readinto(self._inner, buffer))

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        return self._guard(lambda: self._inner.seek(offset, whence))

    def tell(self) -> int:
        return self._guard(self._inner.tell)

    def close(self) -> None:
        if not self.closed:
            try:
                _guarded(self._driver, self._path, self._inner.close)
            finally:
                super().close()


def _readinto(stream: IO[bytes], buffer: Any) -> int:
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        return int(readinto(buffer))
    view = memoryview(buffer).cast("B")
    data = stream.read(view.nbytes)
    view[: len(data)] = data
    return len(data)


class WriterState(enum.Enum):
    """Where a FileWriter is in its life: open → closed | committed | cancelled | released."""

    OPEN = "open"
    CLOSED = "closed"
    COMMITTED = "committed"
    CANCELLED = "cancelled"
    RELEASED = "released"


class FileWriter(ABC):
    """A streaming, resumable write to one path.

    ``size`` counts every byte written, earlier sessions included. ``close()`` persists the
    write so that ``driver.writer(path, append=True)`` — in this or any other process —
    continues at ``size``. ``commit()`` finalizes: the content is readable once it returns.
    ``cancel()`` discards everything, earlier sessions included. ``release()`` ends a writer
    that was only opened to learn ``size``: with nothing written it makes no backend request at
    all (a resumed write stays exactly as it was saved); after writes it is ``close()``, so
    nothing written is lost and no half-saved state is left. Any call after
    close/commit/cancel/release raises :class:`WriterClosedError`, except ``close()`` after
    commit/cancel/release, which does nothing (so ``with`` blocks are safe).
    Drivers implement ``_write``, ``_close``, ``_commit``, ``_cancel`` and ``_release``.
    """

    def __init__(self, driver: str, path: str, size: int = 0) -> None:
        self.driver = driver
        self.path = path
        self._size = size
        self._opened_at = size
        self.state = WriterState.OPEN
        #: The caller's hint that these bytes are not read back soon (a pull-through cache's
        #: fetch, streamed to its client from memory): a driver may write them past its cache.
        self.uncached = False

    @property
    def size(self) -> int:
        """Bytes written so far, including earlier sessions of this write."""
        return self._size

    @final
    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data``; returns the number of bytes taken (always all of them)."""
        self._check_open("write")
        view = memoryview(data).cast("B")
        if view.nbytes:
            _guarded(self.driver, self.path, lambda: self._write(view))
            self._size += view.nbytes
        return view.nbytes

    @final
    def close(self) -> None:
        """Persist what was written so that a later ``writer(path, append=True)`` continues it."""
        if self.state in (WriterState.COMMITTED, WriterState.CANCELLED, WriterState.RELEASED):
            return
        self._check_open("close")
        self.state = WriterState.CLOSED
        _guarded(self.driver, self.path, self._close)

    @final
    def commit(self) -> None:
        """Finalize the content; readable at ``path`` once this returns."""
        self._check_open("commit")
        _guarded(self.driver, self.path, self._commit)
        self.state = WriterState.COMMITTED

    @final
    def cancel(self) -> None:
        """Discard the write, including state saved by earlier sessions."""
        self._check_open("cancel")
        self.state = WriterState.CANCELLED
        _guarded(self.driver, self.path, self._cancel)

    @final
    def release(self) -> None:
        """End the writer; with nothing written since it opened, without any backend request."""
        self._check_open("release")
        if self._size != self._opened_at:
            self.close()
            self.state = WriterState.RELEASED
            return
        self.state = WriterState.RELEASED
        _guarded(self.driver, self.path, self._release)

    def __enter__(self) -> FileWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self, what: str) -> None:
        if self.state is not WriterState.OPEN:
            raise WriterClosedError(
                f"cannot {what}: writer is {self.state.value}", driver=self.driver, path=self.path
            )

    @abstractmethod
    def _write(self, data: memoryview) -> None:
        """Take all of ``data`` (non-empty); the core adds its length to ``size``."""

    @abstractmethod
    def _close(self) -> None:
        """Persist buffered data and resume state in the backend."""

    @abstractmethod
    def _commit(self) -> None:
        """Make the content readable at the path, replacing what was there."""

    @abstractmethod
    def _cancel(self) -> None:
        """Remove everything this write (and earlier sessions of it) left in the backend."""

    @abstractmethod
    def _release(self) -> None:
        """Free local resources (nothing was written): make no backend request."""


class _LazyWriter(FileWriter):
    """A fresh write that opens the driver's writer at its first byte (or at commit)."""

    def __init__(self, driver: StorageDriver, path: str) -> None:
        super().__init__(driver.name, path, 0)
        self._driver = driver
        self._inner: FileWriter | None = None

    def _opened(self) -> FileWriter:
        if self._inner is None:
            self._inner = self._driver._writer(self.path, False)
        return self._inner

    def _write(self, data: memoryview) -> None:
        inner = self._opened()
        inner.uncached = self.uncached
        inner.write(data)

    def _close(self) -> None:
        if self._inner is not None:
            self._inner.close()

    def _commit(self) -> None:
        self._opened().commit()

    def _cancel(self) -> None:
        if self._inner is not None:
            self._inner.cancel()

    def _release(self) -> None:
        if self._inner is not None:
            self._inner.release()


_D = TypeVar("_D", bound="StorageDriver")


class StorageDriver(ABC):
    """The storage-driver contract. Subclasses set ``name`` and ``Params`` and implement hooks.

    Drivers must be safe to call from several threads at once; a FileWriter is used by one
    thread at a time.
    """

    name: ClassVar[str]
    #: A dataclass of the driver's parameters; ``from_params`` fills it from strings or values.
    Params: ClassVar[type[Any]]

    @classmethod
    def from_params(cls: type[_D], params: dict[str, Any]) -> _D:
        """Build the driver from configuration; unknown or malformed parameters are errors."""
        build = cast("Callable[[Any], _D]", cls)  # concrete drivers take their Params
        return build(parse_params(cls.Params, params, owner=f"driver {cls.name!r}"))

    # -- public, final -----------------------------------------------------------------------

    @final
    def get_content(self, path: str) -> bytes:
        """Return the whole content at ``path``; missing → PathNotFoundError. For small objects."""
        self._valid(path)
        return self._call("get_content", path, lambda: self._get_content(path))

    @final
    def put_content(self, path: str, data: bytes) -> None:
        """Store ``data`` at ``path``, replacing (and truncating) what was there."""
        self._valid(path)
        payload = bytes(data)
        self._call("put_content", path, lambda: self._put_content(path, payload))

    @final
    def put_content_if_absent(self, path: str, data: bytes) -> bool:
        """Store ``data`` at ``path`` only if nothing is there; True when this call stored it.

        Atomic across processes and hosts sharing the storage (O_EXCL/link on a filesystem,
        conditional writes on object stores): of concurrent callers exactly one gets True. It
        is what leases and per-upload writer claims are built on.
        """
        self._valid(path)
        payload = bytes(data)
        return self._call(
            "put_content_if_absent", path, lambda: self._put_content_if_absent(path, payload)
        )

    @final
    def reader(self, path: str, offset: int = 0) -> IO[bytes]:
        """Open a binary stream at ``offset``.

        offset == size gives an empty stream; < 0 or > size → InvalidOffsetError.
        """
        self._valid(path)
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise InvalidOffsetError(driver=self.name, path=path, offset=offset)
        stream = self._call("reader", path, lambda: self._reader(path, offset))
        return cast(IO[bytes], GuardedReader(stream, self.name, path))

    @final
    def writer(self, path: str, append: bool = False) -> FileWriter:
        """Open a resumable writer.

        ``append=False`` starts afresh (discarding any unfinished write at the path).
        ``append=True`` continues an unfinished (closed) write at its size, or else the
        committed content at its size; with neither → PathNotFoundError.
        """
        self._valid(path)
        return self._call("writer", path, lambda: self._writer(path, append))

    @final
    def resume_writer(self, path: str, expect_fresh: bool = False) -> FileWriter:
        """``writer(path, append=True)`` when there is something to continue, else a fresh one.

        What a resumable upload opens on every request: object stores look once (the state
        object) instead of failing the append and then looking again for a fresh write's
        discard. A fresh write stores nothing before its first byte, so opening one to learn
        that ``size`` is 0 and releasing it is no backend write (closing it empty leaves
        nothing to append to either). Of rival fresh writes of one path (each found nothing),
        one may store its bytes; the others get :class:`WriteConflictError` (one writer per
        upload, conformance ``OneWriterCases``).

        ``expect_fresh``: the caller knows of no byte written (an upload whose signed token
        says offset 0). Where fresh writes are fenced (:attr:`fresh_writes_fenced`) the
        driver then skips its look: a write stored meanwhile makes this one's close fail with
        :class:`WriteConflictError`, as a rival fresh write's would. Other drivers look.
        """
        self._valid(path)
        if expect_fresh and self.fresh_writes_fenced:
            return self._call("resume_writer", path, lambda: self._fresh_writer(path))
        return self._call("resume_writer", path, lambda: self._resume_writer(path))

    @final
    def commit_to(self, writer: FileWriter, dest: str, if_absent: bool = False) -> bool:
        """Commit ``writer`` (one of this driver's, open) with its content at ``dest``.

        The same as ``writer.commit()`` then ``move(writer.path, dest)``, which is the default;
        object stores store a write that never started a multipart upload straight at
        ``dest`` (one request instead of a put, a copy and a delete). ``if_absent``: only if
        nothing is at ``dest``; else False, with nothing else done: the writer stays open, or
        (a store that completed the write for a conditional copy) it is committed in place, as
        after ``commit()``. Object stores make the put or copy conditional instead of looking
        first. True also says that nothing was at ``dest`` a moment before.
        """
        self._valid(dest)
        writer._check_open("commit")
        return self._call("commit_to", dest, lambda: self._commit_to(writer, dest, if_absent))

    @final
    def move_committed(self, writer: FileWriter, dest: str) -> None:
        """``move(writer.path, dest)`` of what ``writer`` committed in place, still unchanged.

        For a commit that reads its content back between ``commit()`` and the move (a digest
        other than SHA-256, a stored copy to compare): where another writer could have
        continued the content since (the filesystem appends in place), the move refuses it
        with :class:`WriteConflictError` instead of moving bytes the caller never read. The
        default is ``move``: object stores keep a committed object as it is until a rival
        commits, which is a verified commit of its own.
        """
        self._valid(dest)
        if writer.state is not WriterState.COMMITTED:
            raise WriterClosedError(
                f"cannot move: writer is {writer.state.value}, not committed",
                driver=self.name, path=writer.path,
            )
        self._call("move", writer.path, lambda: self._move_committed(writer, dest))

    @final
    def stat(self, path: str) -> FileInfo:
        """Size, modification time and kind; directories are implied by children."""
        self._valid(path, allow_root=True)
        return self._call("stat", path, lambda: self._stat(path))

    @final
    def stat_file(self, path: str) -> FileInfo:
        """``stat`` of a file only: a directory or nothing → PathNotFoundError.

        For callers that only ask "is there a file" (a blob's data, a marker): object stores
        answer it with one HEAD, where ``stat`` of a missing key also lists to look for an
        implied directory.
        """
        self._valid(path)
        return self._call("stat_file", path, lambda: self._stat_file(path))

    @final
    def list(self, path: str) -> list[str]:
        """Absolute paths of the direct children, sorted; missing or a file → PathNotFoundError."""
        self._valid(path, allow_root=True)
        return sorted(self._call("list", path, lambda: self._list(path)))

    @final
    def move(self, source: str, dest: str) -> None:
        """Move ``source`` to ``dest``, overwriting it; missing source → PathNotFoundError."""
        self._valid(source)
        self._valid(dest)
        self._call("move", source, lambda: self._move(source, dest))

    @final
    def delete(self, path: str) -> None:
        """Delete ``path`` and everything under it (``/a`` never touches ``/ab``)."""
        self._valid(path)
        self._call("delete", path, lambda: self._delete(path))

    @final
    def delete_many(self, paths: Iterable[str]) -> None:
        """Delete the files at ``paths``, as many in one request as the store takes.

        For callers that already know which files go (garbage collection): a path already
        gone is fine, and a path naming a directory is left as it is (``delete`` removes a
        tree). On a store with real directories (the filesystem) a directory that a deleted
        file leaves empty goes too, as an implied directory goes with an object store's last key
        below it. S3 deletes a thousand keys in one request; the default deletes one at a time.
        """
        todo = list(dict.fromkeys(paths))
        for path in todo:
            self._valid(path)
        if todo:
            self._call("delete_many", todo[0], lambda: self._delete_many(todo))

    @final
    def redirect_url(self, path: str, method: str = "GET") -> str | None:
        """Return a URL a client can fetch the content from directly, or None if unsupported."""
        self._valid(path)
        if method not in ("GET", "HEAD"):
            raise UnsupportedMethodError(f"redirect for {method}", driver=self.name, path=path)
        return self._call("redirect_url", path, lambda: self._redirect_url(path, method))

    @final
    def walk(self, path: str) -> Iterator[FileInfo]:
        """Yield every descendant of ``path`` (not itself), depth first, siblings in byte order."""
        self._valid(path, allow_root=True)
        items = self._call("walk", path, lambda: self._walk(path))
        while True:
            item = self._call("walk", path, lambda: next(items, None))
            if item is None:
                return
            yield item

    @property
    def preferred_chunk_size(self) -> int | None:
        """The write size this driver's writer handles best (a part, block or chunk), or None.

        The HTTP API advertises it as ``OCI-Chunk-Min-Length`` so clients send whole parts.
        """
        return None

    @property
    def commit_keeps_write(self) -> bool:
        """Whether ``commit_to`` leaves the write resumable at its path until it is deleted.

        True (S3, inmemory: the write's state object stays): a commit interrupted after
        ``commit_to`` resumes the write and commits it again, so the registry writes no commit
        marker. False (the default; the filesystem renames the data): the path holds nothing
        afterwards, and the marker is what lets a retried commit finish.
        """
        return False

    @property
    def fresh_writes_fenced(self) -> bool:
        """Whether a fresh write stores nothing before its ``close()``, which is fenced.

        True (object stores): ``resume_writer``'s fresh write keeps its bytes in memory and in
        parts no one reads until its close, which claims the advance from offset 0 as every
        later close claims its own; of rival fresh writes one close wins, the others get
        :class:`WriteConflictError`. Opening a write empty first (to have something to
        continue) then buys nothing. False (the filesystem, the default): a fresh write's
        bytes land in the file as they come, so an upload opens its data file empty at its
        start, as Distribution does, and every chunk continues it.
        """
        return False

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by design
        """Release connections and threads; the default has nothing to release."""

    # -- hooks -------------------------------------------------------------------------------

    @abstractmethod
    def _get_content(self, path: str) -> bytes: ...

    @abstractmethod
    def _put_content(self, path: str, data: bytes) -> None: ...

    @abstractmethod
    def _reader(self, path: str, offset: int) -> IO[bytes]: ...

    @abstractmethod
    def _writer(self, path: str, append: bool) -> FileWriter: ...

    @abstractmethod
    def _stat(self, path: str) -> FileInfo: ...

    @abstractmethod
    def _list(self, path: str) -> builtins.list[str]: ...

    @abstractmethod
    def _move(self, source: str, dest: str) -> None: ...

    @abstractmethod
    def _delete(self, path: str) -> None: ...

    def _redirect_url(self, path: str, method: str) -> str | None:
        """Drivers without direct URLs keep this default."""
        return None

    def _stat_file(self, path: str) -> FileInfo:
        """From ``_stat``; drivers whose ``stat`` lists for implied directories override it."""
        info = self._stat(path)
        if info.is_dir:
            raise PathNotFoundError(path=path)
        return info

    def _resume_writer(self, path: str) -> FileWriter:
        """Append, or a fresh write opened at its first byte; drivers that look once override."""
        try:
            return self._writer(path, True)
        except PathNotFoundError:
            return _LazyWriter(self, path)

    def _fresh_writer(self, path: str) -> FileWriter:
        """A fresh write opened without a look; drivers whose fresh writes are fenced override."""
        return self._resume_writer(path)

    def _commit_to(self, writer: FileWriter, dest: str, if_absent: bool) -> bool:
        """Commit in place, then move; drivers that can store at ``dest`` directly override."""
        if if_absent and self._is_file(dest):
            return False
        writer.commit()
        self._move(writer.path, dest)
        return True

    def _is_file(self, path: str) -> bool:
        try:
            self._stat_file(path)
        except PathNotFoundError:
            return False
        return True

    def _move_committed(self, writer: FileWriter, dest: str) -> None:
        """A plain move; drivers whose committed content others can change in place override."""
        self._move(writer.path, dest)

    def _put_content_if_absent(self, path: str, data: bytes) -> bool:
        """Drivers without an atomic create keep this default (callers must not guess one)."""
        raise UnsupportedMethodError("put_content_if_absent", driver=self.name, path=path)

    def _delete_many(self, paths: builtins.list[str]) -> None:
        """One file at a time; drivers that delete many objects per request override it."""
        for path in paths:
            try:
                if not self._stat(path).is_dir:
                    self._delete(path)
            except PathNotFoundError:
                continue

    def _walk(self, path: str) -> Iterator[FileInfo]:
        """Walk generically from list + stat; drivers with flat listings override it."""
        for child in sorted(self._list(path)):
            info = self._stat(child)
            yield info
            if info.is_dir:
                yield from self._walk(child)

    # -- plumbing ----------------------------------------------------------------------------

    def _valid(self, path: str, *, allow_root: bool = False) -> None:
        try:
            validate_path(path, allow_root=allow_root)
        except InvalidPathError as exc:
            exc.driver = self.name
            raise

    def _call(self, op: str, path: str, call: Callable[[], _T]) -> _T:
        start = time.perf_counter()
        try:
            return _guarded(self.name, path, call)
        finally:
            elapsed = time.perf_counter() - start
            observe.storage_call(self.name, op, elapsed)
            log.debug("%s.%s %s %.1fms", self.name, op, path, elapsed * 1e3)


def walk_order_key(path: str) -> tuple[str, ...]:
    """Sort key giving the contract's walk order (depth first, siblings in byte order)."""
    return tuple(path.split("/"))


def not_found(path: str) -> PathNotFoundError:
    """Shorthand drivers use for the most common error."""
    return PathNotFoundError(path=path)


#: The modification time of every implied directory (object stores have no directories: one
#: rule for stat and walk alike, and stat need not list a whole subtree to find a newest child).
EPOCH = dt.datetime.fromtimestamp(0, dt.UTC)
