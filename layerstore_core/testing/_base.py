"""Fixtures and helpers the conformance mixins share.

Every test works under its own random root path (``/ct-<hex>``) with random data, so cloud
backends can run the suite on a shared bucket prefix. The ``driver`` fixture snapshots the
backend before the test (every path ``walk("/")`` reports, plus ``Backend.leftovers()`` where the
backend provides it), deletes the test's root afterwards and fails the test if anything new is
left: a driver whose delete misses something, or that leaks temp files or unfinished uploads,
fails here rather than filling a bucket.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import uuid
from collections.abc import Iterable, Iterator
from typing import TypeVar

import pytest

from ..driver import FileWriter, StorageDriver, join_path
from ..errors import PathNotFoundError, StorageDriverError
from .backend import Backend

KIB = 2**10
MIB = 2**20
#: S3's minimum size of a non-final multipart part.
S3_MIN_PART = 5 * MIB
#: GCS resumable uploads take chunks in multiples of this.
GCS_CHUNK = 256 * KIB
#: Default size of the one big streaming case; ``--large-stream-mib`` changes it.
DEFAULT_LARGE_STREAM_MIB = 256
#: Chunk size used to produce and check streams without holding them in memory.
STREAM_CHUNK = 4 * MIB

_E = TypeVar("_E", bound=StorageDriverError)


def payload(size: int, seed: int | None = None) -> bytes:
    """``size`` random bytes: from ``os.urandom``, or reproducible from ``seed``."""
    if seed is None:
        return os.urandom(size)
    return random.Random(seed).randbytes(size)


def random_chunks(total: int, seed: int, chunk: int = STREAM_CHUNK) -> Iterator[bytes]:
    """``total`` pseudo-random bytes in chunks, never all in memory; same seed, same bytes."""
    rng = random.Random(seed)
    left = total
    while left > 0:
        n = min(chunk, left)
        yield rng.randbytes(n)
        left -= n


@contextlib.contextmanager
def raises(driver: StorageDriver, kind: type[_E]) -> Iterator[pytest.ExceptionInfo[_E]]:
    """Like ``pytest.raises``, and the error must name ``driver`` (the contract says every does)."""
    with pytest.raises(kind) as info:
        yield info
    assert info.value.driver == driver.name, f"error does not name the driver: {info.value!r}"


def write_stream(
    driver: StorageDriver,
    path: str,
    chunks: Iterable[bytes],
    *,
    append: bool = False,
    commit: bool = True,
) -> FileWriter:
    """Write ``chunks`` through a writer, then commit (or close); returns the finished writer."""
    writer = driver.writer(path, append=append)
    try:
        for chunk in chunks:
            assert writer.write(chunk) == len(chunk)
    except BaseException:
        writer.cancel()
        raise
    if commit:
        writer.commit()
    else:
        writer.close()
    return writer


def read_stream(driver: StorageDriver, path: str, offset: int = 0) -> bytes:
    """Read ``path`` from ``offset`` through ``reader`` in small pieces (not one ``read()``)."""
    parts = []
    with contextlib.closing(driver.reader(path, offset)) as stream:
        while piece := stream.read(64 * KIB):
            parts.append(piece)
    return b"".join(parts)


def stream_digest(driver: StorageDriver, path: str) -> tuple[str, int]:
    """(sha256 hex, size) of ``path`` read through ``reader`` in chunks."""
    digest = hashlib.sha256()
    size = 0
    with contextlib.closing(driver.reader(path)) as stream:
        while piece := stream.read(STREAM_CHUNK):
            digest.update(piece)
            size += len(piece)
    return digest.hexdigest(), size


def _snapshot(driver: StorageDriver, backend: Backend) -> set[str]:
    try:
        seen = {info.path for info in driver.walk("/") if not info.is_dir}
    except PathNotFoundError:
        seen = set()
    if backend.leftovers is not None:
        seen |= {f"raw:{name}" for name in backend.leftovers()}
    return seen


class SuiteBase:
    """Fixtures every conformance mixin uses; the adopter provides ``conformance_backend``."""

    @pytest.fixture
    def conformance_backend(self) -> Backend:
        """Override in the adopting class: return a fresh, isolated Backend for one test."""
        pytest.fail(
            "a ConformanceSuite subclass must define the fixture `conformance_backend` "
            "returning a layerstore_core.testing.Backend"
        )

    @pytest.fixture
    def root(self) -> str:
        """Return a path no other test uses; everything a test writes goes under it."""
        return f"/ct-{uuid.uuid4().hex[:16]}"

    @pytest.fixture
    def driver(self, conformance_backend: Backend, root: str) -> Iterator[StorageDriver]:
        """Build the driver under test; teardown deletes ``root``, fails if anything is left."""
        drv = conformance_backend.make()
        before = _snapshot(drv, conformance_backend)
        yield drv
        try:
            with contextlib.suppress(PathNotFoundError):
                drv.delete(root)
            left = sorted(_snapshot(drv, conformance_backend) - before)
        finally:
            drv.close()
        if left:
            shown = ", ".join(left[:10]) + (" ..." if len(left) > 10 else "")
            pytest.fail(f"test left {len(left)} item(s) behind after deleting {root}: {shown}")

    @pytest.fixture
    def large_stream_bytes(self, request: pytest.FixtureRequest) -> int:
        """Size of the large-stream case, from ``--large-stream-mib``."""
        mib = request.config.getoption("large_stream_mib", default=DEFAULT_LARGE_STREAM_MIB)
        return int(mib) * MIB


def under(root: str, *names: str) -> str:
    """``root/names...`` as a contract path."""
    path = root
    for name in names:
        path = join_path(path, name)
    return path
