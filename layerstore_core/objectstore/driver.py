"""The storage contract derived, once, from a :class:`~.bucket.Bucket`'s primitives.

A contract path ``/a/b`` is the key ``<prefix>a/b``; directories are implied by keys below
them (:mod:`.tree`). An unfinished write to ``/a/b`` that must remember something between
sessions keeps it in the *state object* ``<prefix>a/b~state`` (:func:`state_key`): ``~`` is
outside the path grammar, so no contract path names it and listings skip it, and it lies below
every directory above its path, so deleting a directory removes it without another listing.
"""

from __future__ import annotations

import builtins
import io
from collections.abc import Iterator, Sequence
from typing import IO, Any, Generic, TypeVar

from ..driver import EPOCH, FileInfo, FileWriter, StorageDriver, is_component, join_path
from ..errors import InvalidOffsetError, PathNotFoundError
from .bucket import Bucket, ListPage, ObjectInfo, delete_in_batches
from .partwriter import STATE_SUFFIX, PartWriter, discard, keeps_source, load_state, state_key
from .tree import child_name, child_names, walk_entries

_B = TypeVar("_B", bound=Bucket)

#: Bytes a reader asks its stream for at a time (the stream itself may fetch more).
READ_BLOCK = 1 << 20


class ObjectStoreDriver(StorageDriver, Generic[_B]):
    """A StorageDriver over a flat object store; subclasses build :attr:`bucket` and set names.

    Subclasses set ``name`` and ``Params`` and call ``super().__init__(bucket, prefix)``; they
    implement nothing of the contract themselves.
    """

    def __init__(self, bucket: _B, prefix: str) -> None:
        self.bucket = bucket
        #: The root directory as a key prefix: ``""`` or ``"a/b/"``.
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @property
    def preferred_chunk_size(self) -> int:
        """One full part: what the writer sends on without buffering."""
        return self.bucket.part_size(1)

    @property
    def fresh_writes_fenced(self) -> bool:
        """A fresh write stores nothing before its close, which is fenced (:mod:`.fence`)."""
        return True

    @property
    def commit_keeps_write(self) -> bool:
        """Where the state object stays until the path is deleted (:func:`.keeps_source`)."""
        return keeps_source(self.bucket)

    def close(self) -> None:
        self.bucket.close()

    # -- keys --------------------------------------------------------------------------------

    def key(self, path: str) -> str:
        """The object key of a contract path."""
        return self.prefix + path[1:]

    def _dir_prefix(self, path: str) -> str:
        return self.prefix if path == "/" else self.key(path) + "/"

    # -- whole objects -----------------------------------------------------------------------

    def _get_content(self, path: str) -> bytes:
        stream = self.bucket.get(self.key(path))
        try:
            return stream.read()
        finally:
            stream.close()

    def _put_content(self, path: str, data: bytes) -> None:
        self.bucket.put(self.key(path), data)

    def _put_content_if_absent(self, path: str, data: bytes) -> bool:
        return self.bucket.put_if_absent(self.key(path), data)

    def _reader(self, path: str, offset: int) -> IO[bytes]:
        key = self.key(path)
        try:
            stream = self.bucket.get(key, offset)
        except InvalidOffsetError:
            info = self.bucket.head(key)  # a range at the end is empty; past it is bad
            if info is None:
                raise PathNotFoundError(path=path) from None
            if offset != info.size:
                raise InvalidOffsetError(path=path, offset=offset) from None
            return io.BytesIO(b"")
        return io.BufferedReader(_Raw(stream), READ_BLOCK)

    def _writer(self, path: str, append: bool) -> FileWriter:
        return PartWriter.open(self.bucket, self.name, path, self.key(path), append)

    def _resume_writer(self, path: str) -> FileWriter:
        return PartWriter.resume_or_start(self.bucket, self.name, path, self.key(path))

    def _fresh_writer(self, path: str) -> FileWriter:
        return PartWriter(self.bucket, self.name, path, self.key(path))

    def _commit_to(self, writer: FileWriter, dest: str, if_absent: bool) -> bool:
        if isinstance(writer, PartWriter):
            done = writer.commit_at(self.bucket, self.key(dest), if_absent)
            if done is not None:
                return done
        return super()._commit_to(writer, dest, if_absent)

    def _redirect_url(self, path: str, method: str) -> str | None:
        return self.bucket.signed_url(self.key(path), method)

    # -- listings ----------------------------------------------------------------------------

    def _pages(self, prefix: str, *, delimiter: bool) -> Iterator[ListPage]:
        token: str | None = None
        while True:
            page = self.bucket.list_page(prefix, delimiter=delimiter, token=token)
            yield page
            token = page.token
            if token is None:
                return

    def _stat(self, path: str) -> FileInfo:
        if path != "/":
            info = self.bucket.head(self.key(path))
            if info is not None:
                return FileInfo(path, info.size, info.modified, False)
        if path == "/" or self._has_children(path):
            return FileInfo(path, 0, EPOCH, True)
        raise PathNotFoundError(path=path)

    def _stat_file(self, path: str) -> FileInfo:
        info = self.bucket.head(self.key(path))  # one HEAD: no listing for implied directories
        if info is None:
            raise PathNotFoundError(path=path)
        return FileInfo(path, info.size, info.modified, False)

    def _has_children(self, path: str) -> bool:
        return self._holds_visible(self._dir_prefix(path))

    def _holds_visible(self, prefix: str) -> bool:
        """Whether a visible key lies below ``prefix`` (usually the first page's first key)."""
        for page in self._pages(prefix, delimiter=False):
            if any(child_name(o.key[len(prefix) :]) for o in page.objects):
                return True
        return False

    def _list(self, path: str) -> builtins.list[str]:
        """Children made by visible keys only, as ``walk`` shows them (:func:`.tree.child_name`).

        A directory whose keys fit one flat page is listed by that page. A larger one takes a
        delimited listing, and a child prefix the flat page did not already show visible is
        looked into (one page, as a rule): it may hold only an unfinished write's side objects.
        """
        prefix = self._dir_prefix(path)
        first = self.bucket.list_page(prefix, delimiter=False, token=None)
        found = child_names(o.key[len(prefix) :] for o in first.objects)
        if first.token is not None:
            for page in self._pages(prefix, delimiter=True):
                found |= child_names(o.key[len(prefix) :] for o in page.objects)
                for sub in page.prefixes:
                    name = sub[len(prefix) :].rstrip("/")
                    if name not in found and is_component(name) and self._holds_visible(sub):
                        found.add(name)
        if not found and path != "/":
            raise PathNotFoundError(path=path)
        return sorted(join_path(path, name) for name in found)

    def _objects(self, prefix: str) -> Iterator[ObjectInfo]:
        for page in self._pages(prefix, delimiter=False):
            yield from page.objects

    def _walk(self, path: str) -> Iterator[FileInfo]:
        """One flat listing for the whole tree (not a listing per directory)."""
        prefix = self._dir_prefix(path)
        files = ((o.key[len(prefix) :], o.size, o.modified) for o in self._objects(prefix))
        entries = walk_entries(path, files)
        if not entries and path != "/":
            raise PathNotFoundError(path=path)
        return iter(entries)

    # -- move, delete ------------------------------------------------------------------------

    def _move(self, source: str, dest: str) -> None:
        info = self.bucket.head(self.key(source))
        if info is None:
            raise PathNotFoundError(path=source)
        if source == dest:  # copy-then-delete would delete the only copy
            return
        self.bucket.copy(info, self.key(dest))
        self.bucket.delete_many([info.key])

    def _delete(self, path: str) -> None:
        """The object, everything below it and their unfinished writes, in batches.

        Unfinished writes found below are aborted first (their parts cost storage). The one at
        a file ``path`` itself loses its state object and, on a :attr:`~.Bucket.segmented`
        store, its segment objects (whole objects nothing else would remove; one listing,
        :meth:`~.Bucket.segment_keys`), also where nothing committed is there; it is not
        aborted otherwise, as finding its state would cost a request.
        """
        key = self.key(path)
        hidden = self.bucket.unfinished_keys(key + "/")
        below = list(hidden) if hidden is not None else [o.key for o in self._objects(key + "/")]
        rel = len(key) + 1
        # A directory with visible children is found without a HEAD of its own key (nor a
        # listing of segments: no file write of its own).
        found = any(child_name(k[rel:]) for k in below)
        own = self.bucket.segment_keys(key) if self.bucket.segmented and not found else []
        found = found or self.bucket.head(key) is not None
        if not found and not below and not own:
            raise PathNotFoundError(path=path)
        for doomed in below:  # unfinished writes go even where nothing committed is found
            if doomed.endswith(STATE_SUFFIX):
                target = doomed[: -len(STATE_SUFFIX)]
                state = load_state(self.bucket, target, path)
                if state is not None:
                    discard(self.bucket, target, state)
        self._delete_keys([key, state_key(key), *own, *below])
        if not found:
            raise PathNotFoundError(path=path)

    def _delete_many(self, paths: builtins.list[str]) -> None:
        """Each file's object and state object, :attr:`Bucket.delete_batch` keys a request.

        Nothing is listed: a directory's own key does not exist, so what lies below it stays.
        An unfinished write at a path loses its state object, as ``delete`` does.
        """
        keys = [self.key(path) for path in paths]
        self._delete_keys([k for key in keys for k in (key, state_key(key))])

    def _delete_keys(self, keys: Sequence[str]) -> None:
        delete_in_batches(self.bucket, keys)


class _Raw(io.RawIOBase):
    """A bucket's response stream as a raw stream, so the reader never holds the whole object."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        chunk = self._stream.read(view.nbytes)
        view[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()
