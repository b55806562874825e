"""The ``filesystem`` driver: a directory tree, laid out exactly as Distribution's driver does.

Contract path ``/a/b`` is the file ``<rootdirectory>/a/b``. The core has already rejected every
path with an empty, ``.`` or ``..`` component, so joining components can never climb out of the
root. Symbolic links inside the root are followed, as Distribution's driver follows them: whoever
can create them there is trusted as much as the operator who chose the root.

* ``put_content`` is atomic: the data goes to a temp file in the target's directory, is
  fsynced, and ``os.replace``-d over the target. A reader sees the old or the new file, never a
  torn one, also after a crash mid-write. Temp files are named ``~put-<hex>``: ``~`` is outside
  the path grammar, so no contract path can name them and ``list``/``walk`` skip every entry
  whose name is not a valid path component. A crash can leave one behind; ``delete`` of its
  directory removes it.
* ``writer`` writes in place at the path, as Distribution's does, so an upload file that another
  process left behind (ours or Distribution's) is continued by ``writer(path, append=True)``
  at the file's size. ``close`` flushes, ``commit`` flushes and fsyncs; ``cancel`` removes the file.
* One writer at a time: a writer takes ``flock(LOCK_EX | LOCK_NB)`` on its file before its first
  byte (a fresh writer before it truncates) and holds it until it ends; then it checks that the
  file still has the size it opened at and is still the file at the path. A rival writer —
  another thread, process or (over NFS, where Linux maps flock to byte-range locks) host — gets
  :class:`WriteConflictError` at once, and the kernel drops the lock of a killed process, so a
  crashed writer's retry proceeds immediately. ``commit_to`` renames the file to its destination
  while the lock is held, so a rival that claims after the commit finds the file gone from the
  path (a conflict) instead of appending to bytes that are then moved into a blob. A commit in
  place records the file's identity (inode, size, mtime); ``move_committed`` takes the lock and
  renames only while the file still has it, so what a rival appended after the commit (while the
  caller read the content back) is refused, not moved. ``resume_writer``'s fresh write (nothing
  was there) creates the file with ``O_EXCL`` at its first byte: of rivals that each found
  nothing, one creates it and the others get :class:`WriteConflictError`.
* Directories are real; they are created on demand (the root too) and are left behind, empty,
  when their last file goes (Distribution does the same; ``delete`` of a parent removes them).

Every ``OSError`` is translated in :func:`_translated`.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import datetime as dt
import errno
import fcntl
import os
import secrets
import shutil
import stat as stat_mod
from collections.abc import Callable, Iterator
from typing import IO, BinaryIO

from ..driver import EPOCH, FileInfo, FileWriter, StorageDriver, is_component, join_path
from ..errors import (
    InvalidOffsetError,
    PathNotFoundError,
    StorageDriverError,
    WriteConflictError,
)
from ..params import ParameterError

#: Prefix of ``put_content``'s temp files; ``~`` keeps them outside the path grammar.
TEMP_PREFIX = "~put-"
#: Buffer of a writer's file object: small ``write()`` calls become large syscalls.
WRITE_BUFFER = 1 << 20
#: Alignment of an O_DIRECT write's buffer address, file offset and length: a page, which every
#: Linux block device's logical block size divides.
DIRECT_ALIGN = 4096
#: Smaller uncached writes go through the page cache (the last piece of a blob, say).
DIRECT_MIN = 1 << 20
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)

_NOT_FOUND = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR}


@dataclasses.dataclass(frozen=True)
class FilesystemParams:
    """Distribution's filesystem parameters.

    ``maxthreads`` is accepted so that a Distribution config works unchanged; Distribution uses
    it to cap OS threads blocked in syscalls, which here the caller's own threads bound.
    """

    rootdirectory: str = "./registry-data"
    maxthreads: int = 100

    def validate(self) -> None:
        """Reject an empty root and a non-positive thread cap."""
        if not self.rootdirectory:
            raise ParameterError("driver 'filesystem': parameter 'rootdirectory' is empty")
        if self.maxthreads < 1:
            raise ParameterError("driver 'filesystem': parameter 'maxthreads' must be >= 1")


@contextlib.contextmanager
def _translated(path: str) -> Iterator[None]:
    """Raise every OSError as the contract's error for ``path`` (the one translation point)."""
    try:
        yield
    except StorageDriverError:
        raise
    except OSError as exc:
        if exc.errno in _NOT_FOUND:
            raise PathNotFoundError(path=path) from exc
        if exc.errno == errno.EEXIST:
            raise StorageDriverError("a parent of the path is a file", path=path) from exc
        raise StorageDriverError(exc.strerror or str(exc), path=path) from exc


def _mtime(st: os.stat_result) -> dt.datetime:
    return dt.datetime.fromtimestamp(st.st_mtime_ns / 1e9, dt.UTC)


def _info(path: str, st: os.stat_result) -> FileInfo:
    is_dir = stat_mod.S_ISDIR(st.st_mode)
    return FileInfo(path, 0 if is_dir else st.st_size, _mtime(st), is_dir)


class FilesystemDriver(StorageDriver):
    """Files under ``rootdirectory``; the embedded default driver."""

    name = "filesystem"
    Params = FilesystemParams

    def __init__(self, params: FilesystemParams | None = None) -> None:
        self.params = params or FilesystemParams()
        self.root = os.path.abspath(self.params.rootdirectory)

    def _full(self, path: str) -> str:
        return self.root if path == "/" else self.root + path

    def _get_content(self, path: str) -> bytes:
        with _translated(path), open(self._full(path), "rb") as f:
            return f.read()

    def _put_content(self, path: str, data: bytes) -> None:
        self._put_atomically(path, data, os.replace)

    def _put_content_if_absent(self, path: str, data: bytes) -> bool:
        """``link`` the complete temp file into place: it fails, atomically, if the path exists."""
        created = True

        def link(temp: str, full: str) -> None:
            nonlocal created
            try:
                os.link(temp, full)
            except FileExistsError:
                created = False

        self._put_atomically(path, data, link)
        return created

    def _put_atomically(self, path: str, data: bytes, place: Callable[[str, str], None]) -> None:
        """Write a synced temp file beside the target, then ``place`` it there; no torn file."""
        full = self._full(path)
        with _translated(path):
            directory = os.path.dirname(full)
            os.makedirs(directory, exist_ok=True)
            temp = os.path.join(directory, TEMP_PREFIX + secrets.token_hex(8))
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
                with open(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                place(temp, full)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(temp)  # after os.replace it is gone already

    def _reader(self, path: str, offset: int) -> IO[bytes]:
        with _translated(path):
            f = open(self._full(path), "rb")  # noqa: SIM115 - the caller owns the stream
            try:
                size = os.fstat(f.fileno()).st_size
                if offset > size:
                    raise InvalidOffsetError(path=path, offset=offset)
                f.seek(offset)
            except BaseException:
                f.close()
                raise
            return f

    def _writer(self, path: str, append: bool) -> FileWriter:
        full = self._full(path)
        with _translated(path):
            if append:  # no O_CREAT: appending to nothing is PathNotFoundError
                fd = os.open(full, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            else:  # no O_TRUNC: truncating is for the writer that holds the lock
                os.makedirs(os.path.dirname(full), exist_ok=True)
                fd = os.open(full, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
            f = open(fd, "wb", buffering=WRITE_BUFFER)  # noqa: SIM115 - the writer owns it
            try:
                size = os.fstat(f.fileno()).st_size
                writer = _FilesystemWriter(self.name, path, f, full, size if append else 0)
                if not append:  # whatever is there is discarded: any size will do
                    writer.claim(size)
                    os.ftruncate(f.fileno(), 0)
            except BaseException:
                f.close()
                raise
        return writer

    def _resume_writer(self, path: str) -> FileWriter:
        """Append, or a fresh write that creates the file, exclusively, at its first byte.

        Nothing was there when the resume looked, so a file there at the first byte is a
        rival's fresh write: ``O_EXCL`` makes exactly one of them the writer (the others get
        WriteConflictError) instead of the later truncating the earlier's bytes.
        """
        try:
            return self._writer(path, True)
        except PathNotFoundError:
            return _FilesystemWriter(self.name, path, None, self._full(path), 0)

    def _commit_to(self, writer: FileWriter, dest: str, if_absent: bool) -> bool:
        """Commit and rename under the writer's lock (see the module docstring)."""
        if not isinstance(writer, _FilesystemWriter):
            return super()._commit_to(writer, dest, if_absent)
        if if_absent and os.path.isfile(self._full(dest)):
            return False
        self._make_room(dest)
        writer.move_on_commit = self._full(dest)
        writer.commit()
        return True

    def _move_committed(self, writer: FileWriter, dest: str) -> None:
        """Rename under the file's lock, and only while it is the file the writer committed.

        A rival that appended after the commit (and let its lock go) changed the size or the
        modification time; one still writing holds the lock; one that claims after the rename
        finds the file gone from the path. Each way the rival's bytes never reach ``dest``.
        """
        if not isinstance(writer, _FilesystemWriter) or writer.committed is None:
            super()._move_committed(writer, dest)  # not committed in place here: nothing to compare
            return
        committed, source = writer.committed, writer.full
        with _translated(writer.path):
            fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with _translated(writer.path):
                _lock(fd, writer.path, "another writer is continuing this committed write")
                now, named = _identity(os.fstat(fd)), _identity(os.stat(source))
            if now != committed or named != committed:
                raise WriteConflictError(
                    "another writer continued this write after its commit", path=writer.path
                )
            self._make_room(dest)
            with _translated(writer.path):
                os.replace(source, self._full(dest))
        finally:
            os.close(fd)  # lets the lock go

    def _make_room(self, dest: str) -> None:
        """Create ``dest``'s parents and remove a directory at ``dest``: a move overwrites it."""
        dst = self._full(dest)
        with _translated(dest):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.isdir(dst) and not os.path.islink(dst):
                shutil.rmtree(dst)

    def _stat(self, path: str) -> FileInfo:
        with _translated(path):
            try:
                return _info(path, os.stat(self._full(path)))
            except FileNotFoundError:
                if path == "/":  # the root exists before its directory does
                    return FileInfo("/", 0, EPOCH, True)
                raise

    def _list(self, path: str) -> list[str]:
        return [join_path(path, name) for name, _ in self._entries(path)]

    def _entries(self, path: str) -> list[tuple[str, os.DirEntry[str]]]:
        """Visible entries of the directory at ``path``, sorted by name (byte order)."""
        with _translated(path):
            try:
                with os.scandir(self._full(path)) as it:
                    found = [(e.name, e) for e in it if is_component(e.name)]  # not temp files
            except FileNotFoundError:
                if path == "/":
                    return []
                raise
        return sorted(found, key=lambda item: item[0])

    def _walk(self, path: str) -> Iterator[FileInfo]:
        for name, entry in self._entries(path):
            child = join_path(path, name)
            try:
                with _translated(child):
                    info = _info(child, entry.stat())
            except PathNotFoundError:
                continue  # deleted while we walked (or a dangling symlink)
            yield info
            if info.is_dir:
                try:
                    yield from self._walk(child)
                except PathNotFoundError:
                    continue  # deleted while we walked

    def _move(self, source: str, dest: str) -> None:
        src, dst = self._full(source), self._full(dest)
        with _translated(source):
            os.lstat(src)
        self._make_room(dest)
        with _translated(source):
            os.replace(src, dst)

    def _delete(self, path: str) -> None:
        full = self._full(path)
        with _translated(path):
            st = os.lstat(full)
            if stat_mod.S_ISDIR(st.st_mode):
                shutil.rmtree(full)
            else:
                os.unlink(full)


    def _delete_many(self, paths: list[str]) -> None:
        """Unlink each file, then its directory if that left it empty (never the root).

        ``rmdir`` removes only an empty directory, so nothing stored is lost to a race.
        """
        for path in paths:
            full = self._full(path)
            with _translated(path):
                try:
                    os.unlink(full)
                except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                    continue
                except PermissionError:  # unlink of a directory on some systems
                    if not os.path.isdir(full):
                        raise
                    continue
                if path.count("/") > 1:
                    with contextlib.suppress(OSError):  # not empty (or gone): it stays
                        os.rmdir(os.path.dirname(full))


def _lock(fd: int, path: str, held_by_rival: str) -> None:
    """Take the file's exclusive lock without waiting: a rival holding it has the write."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise WriteConflictError(held_by_rival, path=path) from None


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """What an append or a rewrite changes: the inode, the size and the modification time."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _create(path: str, full: str) -> BinaryIO:
    """Create the file, failing if it exists: the one fresh writer (``resume_writer``'s)."""
    with _translated(path):
        os.makedirs(os.path.dirname(full), exist_ok=True)
        try:
            fd = os.open(full, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                         0o666)
        except FileExistsError:
            raise WriteConflictError("another writer started this write", path=path) from None
    return open(fd, "wb", buffering=WRITE_BUFFER)


def _direct_ok(data: memoryview, offset: int) -> bool:
    """Whether ``data`` written at ``offset`` meets O_DIRECT's alignment (a page each)."""
    if not _O_DIRECT or data.readonly or data.nbytes < DIRECT_MIN \
            or data.nbytes % DIRECT_ALIGN or offset % DIRECT_ALIGN:
        return False
    return ctypes.addressof(ctypes.c_char.from_buffer(data)) % DIRECT_ALIGN == 0


def _write_direct(fd: int, data: memoryview) -> int:
    """Append ``data`` with O_DIRECT on: the device copies it from ``data``, no page cache.

    Why: a pull-through cache's fetch is streamed to its client from memory, and writing it
    through the page cache as well was two thirds of the fetch's CPU (copying into fresh pages,
    which a VM whose freed memory goes back to the host pays again at every touch). The blob's
    first read comes from the disk instead. Returns the bytes written: fewer (0 included) where
    the file system refuses O_DIRECT, for the caller to write the rest buffered.
    """
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT)
    except OSError:  # EINVAL: no O_DIRECT on this file system
        return 0
    done = 0
    try:
        while done < data.nbytes:
            done += os.write(fd, data[done:])
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # refused (a short write left the rest unaligned)
            raise
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    return done


class _FilesystemWriter(FileWriter):
    """Writes in place through a buffered file; the file on disk is the resume state.

    With no file (``resume_writer`` found none) the file is created at the first byte, or at
    commit, with ``O_EXCL``; until then the writer has stored nothing.
    """

    def __init__(
        self, driver: str, path: str, file: BinaryIO | None, full: str, size: int
    ) -> None:
        super().__init__(driver, path, size)
        self._file = file
        self.full = full
        self._claimed = False
        #: Set by ``commit_to``: the file is renamed here before the lock is let go.
        self.move_on_commit: str | None = None
        #: After a commit in place: the file's identity then, which ``move_committed`` checks.
        self.committed: tuple[int, int, int, int] | None = None

    def _opened(self) -> BinaryIO:
        if self._file is None:
            self._file = _create(self.path, self.full)
        return self._file

    def claim(self, expected: int | None = None) -> None:
        """Become the file's one writer, or raise WriteConflictError (see the module docstring).

        Holding the lock, the file must still be the one at the path with the size this writer
        opened at (or ``expected``): a rival that wrote, committed (moved) or cancelled it in
        between has won.
        """
        if self._claimed:
            return
        fd = self._opened().fileno()
        with _translated(self.path):
            _lock(fd, self.path, "another writer holds this write")
            held = os.fstat(fd)
            try:
                named = os.stat(self.full)
            except FileNotFoundError:
                named = None
        problem = None
        if named is None or (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino):
            problem = "another writer finished this write"
        elif held.st_size != (self._opened_at if expected is None else expected):
            problem = f"another writer continued this write to {held.st_size} bytes"
        if problem is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)  # the winner's file: hold nothing of it
            raise WriteConflictError(problem, path=self.path)
        self._claimed = True

    def _write(self, data: memoryview) -> None:
        self.claim()
        with _translated(self.path):
            file = self._opened()
            if self.uncached and _direct_ok(data, self._size):
                file.flush()  # the direct write goes after everything buffered so far
                done = _write_direct(file.fileno(), data)
                if done == data.nbytes:
                    return
                data = data[done:]
            file.write(data)

    def _close(self) -> None:
        """Flush to the page cache: any process (and, over NFS, any host) sees it from now on.

        No fsync: an unfinished upload is the client's to re-send after a machine crash, and an
        fsync per chunk quartered upload throughput (bench/blob_upload.py). Commit syncs.
        """
        self._release()

    def _commit(self) -> None:
        self.claim()
        file = self._opened()
        with _translated(self.path):
            try:
                file.flush()
                os.fsync(file.fileno())
                if self.move_on_commit is not None:
                    os.replace(self.full, self.move_on_commit)
                else:
                    self.committed = _identity(os.fstat(file.fileno()))
            finally:
                file.close()

    def _cancel(self) -> None:
        if self._file is None:  # a fresh write that stored nothing: nothing to discard
            return
        self._file.close()
        with _translated(self.path), contextlib.suppress(FileNotFoundError):
            os.unlink(self.full)

    def _release(self) -> None:
        """Close the file: writes land in place, so what was written is kept (no sync)."""
        if self._file is not None:
            with _translated(self.path):
                self._file.close()
