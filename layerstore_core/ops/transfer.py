"""Copying one stored file between two drivers: streamed, digest-checked, never half-visible.

A blob is streamed in chunks (memory per job: one chunk plus the destination writer's part
buffer) and hashed on the way; when the bytes do not match the digest its path names, the write
is cancelled and :class:`DigestMismatchError` raised, so a corrupt source never becomes a
"good" copy. Object stores make a write visible only at ``commit()``; a driver that writes in
place (the filesystem driver does, for Distribution's sake) would show a growing blob that a
registry could take for the whole one, so there the copy goes to a staging path first and is
moved into place (:class:`Staging`). The :func:`server_side_copy` seam lets drivers that can
copy between themselves without streaming (the same bucket or account) do so.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable

from ..driver import StorageDriver, WriterState
from ..errors import PathNotFoundError, StorageDriverError
from ..objectstore import ObjectStoreDriver
from ..registry import paths as p
from .ratelimit import RateLimiter

log = logging.getLogger(__name__)

#: Read size of a streamed copy: small, as the destination writer gathers its own parts (a
#: job holds one chunk plus the writer's part buffer).
CHUNK = 1 * 2**20
#: Files up to this size go through get_content/put_content (one request each way).
SMALL = 1 * 2**20
#: Where copies are staged on drivers that write in place; outside blobs/ and repositories/.
STAGING_DIR = f"{p.ROOT}/_layerstore_copy"

#: ``(source, source_path, dest, dest_path) -> copied?``; False lets the caller stream.
ServerSideCopy = Callable[[StorageDriver, str, StorageDriver, str], bool]
_SERVER_SIDE: list[ServerSideCopy] = []


class DigestMismatchError(StorageDriverError):
    """The bytes read do not hash to the digest the blob's path names; nothing was written."""


def register_server_side_copy(copier: ServerSideCopy) -> None:
    """Add a copier; the object-store base registers its copy primitive here.

    A copier returns False for pairs of drivers it cannot copy between (different accounts,
    different driver types) and copies only when both ends are on one service.
    """
    _SERVER_SIDE.append(copier)


def server_side_copy(source: StorageDriver, src_path: str, dest: StorageDriver,
                     dst_path: str) -> bool:
    """Copy without streaming through this process when a registered copier can; else False.

    The public driver contract has no copy (``move`` is not one: it removes the source); the
    object-store base's copy primitive is registered below for two drivers on one bucket.
    """
    return any(copier(source, src_path, dest, dst_path) for copier in _SERVER_SIDE)


def _copy_in_object_store(source: StorageDriver, src_path: str, dest: StorageDriver,
                          dst_path: str) -> bool:
    """The object-store base's copy primitive, when both drivers sit on one bucket."""
    if not (isinstance(source, ObjectStoreDriver) and isinstance(dest, ObjectStoreDriver)):
        return False
    store = source.bucket.store_id()
    if store is None or store != dest.bucket.store_id():
        return False
    info = source.bucket.head(source.key(src_path))
    if info is None:
        raise PathNotFoundError(path=src_path, driver=source.name)
    dest.bucket.copy(info, dest.key(dst_path))
    return True


register_server_side_copy(_copy_in_object_store)


def same_store(a: StorageDriver, b: StorageDriver) -> bool:
    """Whether two drivers are one store: the same object, or one class with equal parameters."""
    if a is b:
        return True
    params_a, params_b = getattr(a, "params", None), getattr(b, "params", None)
    return type(a) is type(b) and params_a is not None and params_a == params_b


class Staging:
    """Where a driver's copies are written before they move into place (None: in place).

    Found by a probe through the public contract: open a writer, write a byte, and see whether
    the path exists before commit.
    """

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver
        self.run_dir: str | None = None
        probe = f"{STAGING_DIR}/probe-{uuid.uuid4().hex}"
        writer = driver.writer(probe)
        try:
            writer.write(b"x")
            try:
                driver.stat(probe)
                self.run_dir = f"{STAGING_DIR}/{uuid.uuid4().hex}"
            except PathNotFoundError:
                pass
        finally:
            writer.cancel()
            self._remove(STAGING_DIR if self.run_dir is None else probe)

    def path(self) -> str | None:
        """A fresh staging path, or None when the driver's writes are invisible until commit."""
        return None if self.run_dir is None else f"{self.run_dir}/{uuid.uuid4().hex}"

    def cleanup(self) -> None:
        """Remove this run's staging directory (an interrupted run leaves one; harmless)."""
        if self.run_dir is None:
            return
        self._remove(self.run_dir)
        try:
            if not self.driver.list(STAGING_DIR):  # no other run's copies in progress
                self._remove(STAGING_DIR)
        except PathNotFoundError:
            pass

    def _remove(self, path: str) -> None:
        try:
            self.driver.delete(path)
        except PathNotFoundError:
            pass


def _check(digest: str | None, hasher: hashlib._Hash | None, path: str) -> None:
    if digest is not None and hasher is not None:
        got = f"{hasher.name}:{hasher.hexdigest()}"
        if got != digest:
            raise DigestMismatchError(f"content hashes to {got}, not {digest}", path=path)


def _hasher(digest: str | None) -> hashlib._Hash | None:
    return hashlib.new(digest.partition(":")[0]) if digest else None


def copy_file(
    source: StorageDriver,
    dest: StorageDriver,
    path: str,
    *,
    size: int,
    digest: str | None = None,
    staging: Staging | None = None,
    limiter: RateLimiter | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Copy ``path`` from ``source`` to the same path in ``dest``, checking ``digest`` if given.

    Running it twice writes the same bytes again; an interruption leaves either the old content
    or, in a staging directory, a partial copy that no registry looks at.
    """
    if server_side_copy(source, path, dest, path):
        if progress is not None:
            progress(size)
        return
    if size <= SMALL:
        data = source.get_content(path)
        if limiter is not None:
            limiter.consume(len(data))
        hasher = _hasher(digest)
        if hasher is not None:
            hasher.update(data)
        _check(digest, hasher, path)
        dest.put_content(path, data)
        if progress is not None:
            progress(len(data))
        return
    _stream(source, dest, path, digest, staging, limiter, progress)


def _stream(source: StorageDriver, dest: StorageDriver, path: str, digest: str | None,
            staging: Staging | None, limiter: RateLimiter | None,
            progress: Callable[[int], None] | None) -> None:
    target = (staging.path() if staging is not None else None) or path
    hasher = _hasher(digest)
    writer = dest.writer(target)
    try:
        with source.reader(path) as stream:
            while chunk := stream.read(CHUNK):
                if limiter is not None:
                    limiter.consume(len(chunk))
                if hasher is not None:
                    hasher.update(chunk)
                writer.write(chunk)
                if progress is not None:
                    progress(len(chunk))
        _check(digest, hasher, path)
        writer.commit()
    except BaseException:
        if writer.state is WriterState.OPEN:
            try:
                writer.cancel()
            except StorageDriverError as exc:  # the first error is the one to report
                log.warning("cancelling the copy of %s failed: %s", path, exc)
        raise
    if target != path:
        dest.move(target, path)


def rehash(driver: StorageDriver, path: str, algorithm: str,
           limiter: RateLimiter | None = None,
           progress: Callable[[int], None] | None = None) -> tuple[str, int]:
    """``(digest, size)`` of the content at ``path``, read in chunks."""
    hasher = hashlib.new(algorithm)
    total = 0
    with driver.reader(path) as stream:
        while chunk := stream.read(CHUNK):
            if limiter is not None:
                limiter.consume(len(chunk))
            hasher.update(chunk)
            total += len(chunk)
            if progress is not None:
                progress(len(chunk))
    return f"{algorithm}:{hasher.hexdigest()}", total
