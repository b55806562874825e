"""The core wrapper: validation, error stamping and wrapping, the writer state machine."""

import errno
import io
import pathlib
from collections.abc import Iterator
from typing import IO

import pytest

from layerstore_core import (
    FileInfo,
    InvalidOffsetError,
    PathNotFoundError,
    StorageDriverError,
    WriterClosedError,
)
from layerstore_core.driver import EPOCH, join_path, validate_path, walk_order_key
from layerstore_core.drivers.filesystem import FilesystemDriver, FilesystemParams
from layerstore_core.drivers.inmemory import InMemoryDriver


class Flaky(InMemoryDriver):
    name = "flaky"

    def _get_content(self, path: str) -> bytes:
        raise ConnectionResetError("peer went away")

    def _stat(self, path: str) -> FileInfo:
        raise PathNotFoundError("custom message", path="/other", driver="inner")

    def _walk(self, path: str) -> Iterator[FileInfo]:
        yield FileInfo("/a", 1, EPOCH, False)
        raise TimeoutError("listing timed out")


def test_stray_exception_is_wrapped_with_cause() -> None:
    with pytest.raises(StorageDriverError) as info:
        Flaky().get_content("/x")
    err = info.value
    assert (err.driver, err.path) == ("flaky", "/x")
    assert isinstance(err.__cause__, ConnectionResetError)
    assert "ConnectionResetError: peer went away" in str(err)


def test_driver_errors_are_not_restamped() -> None:
    with pytest.raises(PathNotFoundError) as info:
        Flaky().stat("/x")
    assert (info.value.driver, info.value.path, info.value.message) == (
        "inner",
        "/other",
        "custom message",
    )


def test_walk_errors_midway_are_wrapped() -> None:
    walker = Flaky().walk("/")
    assert next(walker).path == "/a"
    with pytest.raises(StorageDriverError) as info:
        next(walker)
    assert info.value.driver == "flaky" and isinstance(info.value.__cause__, TimeoutError)


def test_offset_validation() -> None:
    driver = InMemoryDriver()
    driver.put_content("/f", b"abc")
    for bad in (-1, 4, 1.5, "1", True):
        with pytest.raises(InvalidOffsetError) as info:
            driver.reader("/f", bad)  # type: ignore[arg-type]
        assert info.value.driver == "inmemory"


def test_writer_state_machine() -> None:
    driver = InMemoryDriver()
    writer = driver.writer("/f")
    assert writer.write(bytearray(b"ab")) == 2
    assert writer.write(memoryview(b"cdef")[1:3]) == 2
    assert writer.size == 4
    writer.commit()
    assert driver.get_content("/f") == b"abde"
    with pytest.raises(WriterClosedError, match="writer is committed"):
        writer.write(b"x")
    writer.close()  # no-op after commit


def test_two_writers_on_one_path_never_mix() -> None:
    """Whichever commits last wins, whole; one writer's bytes never land in the other's."""
    driver = InMemoryDriver()
    first = driver.writer("/f")
    first.write(b"old")
    second = driver.writer("/f")  # restarts the write
    second.write(b"new")
    first.write(b"more")
    second.commit()
    assert driver.get_content("/f") == b"new"
    first.commit()
    assert driver.get_content("/f") == b"oldmore"


@pytest.mark.parametrize("path", ["/a", "/a/b.c/d-e_f", "/..a", "/a.."])
def test_validate_path_accepts(path: str) -> None:
    assert validate_path(path) == path


def test_validate_root_only_where_allowed() -> None:
    assert validate_path("/", allow_root=True) == "/"
    with pytest.raises(ValueError):
        validate_path("/")


def test_helpers() -> None:
    assert join_path("/", "a") == "/a" and join_path("/a", "b") == "/a/b"
    paths = ["/a-b", "/a/x", "/a", "/B", "/a/x/y"]
    assert sorted(paths, key=walk_order_key) == ["/B", "/a", "/a/x", "/a/x/y", "/a-b"]


class _FailingStream(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: object) -> int:
        raise OSError(errno.EIO, "Input/output error")


class BadDisk(InMemoryDriver):
    name = "baddisk"

    def _reader(self, path: str, offset: int) -> IO[bytes]:
        return io.BufferedReader(_FailingStream())


def test_errors_while_streaming_are_typed_and_stamped() -> None:
    with BadDisk().reader("/blob") as stream, pytest.raises(StorageDriverError) as info:
        stream.read(10)
    assert (info.value.driver, info.value.path) == ("baddisk", "/blob")
    assert isinstance(info.value.__cause__, OSError)


def test_filesystem_reader_is_wrapped(tmp_path: pathlib.Path) -> None:
    """The filesystem reader is the wrapped stream too: seekable, and closed errors typed."""
    driver = FilesystemDriver(FilesystemParams(rootdirectory=str(tmp_path)))
    driver.put_content("/f", b"0123456789")
    with driver.reader("/f", 2) as stream:
        assert stream.read(3) == b"234"
        assert stream.seekable() and stream.seek(0) == 0 and stream.tell() == 0
        buf = bytearray(4)
        assert stream.readinto(buf) == 4 and buf == b"0123"
    with pytest.raises(ValueError, match="closed"):
        stream.read()
