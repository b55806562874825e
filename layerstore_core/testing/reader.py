"""Conformance: streams — write with ``writer``, read with ``reader``, offsets, big streams."""

from __future__ import annotations

import contextlib
import hashlib
import os

import pytest

from ..driver import StorageDriver
from ..errors import InvalidOffsetError, PathNotFoundError
from ._base import SuiteBase, payload, raises, random_chunks, read_stream, stream_digest, under
from .content import CONTENTS


class ReaderCases(SuiteBase):
    """Stream writes and reads, reader offsets, the large stream checked by sha256."""

    @pytest.mark.parametrize("kind", sorted(CONTENTS))
    def test_write_read_stream(self, driver: StorageDriver, root: str, kind: str) -> None:
        path = under(root, "dir", "stream")
        data = CONTENTS[kind]()
        writer = driver.writer(path)
        assert writer.write(data) == len(data)
        assert writer.size == len(data)
        writer.commit()
        assert read_stream(driver, path) == data
        assert driver.get_content(path) == data

    def test_read_nonexistent_stream(self, driver: StorageDriver, root: str) -> None:
        with raises(driver, PathNotFoundError):
            driver.reader(under(root, "missing"))
        with raises(driver, PathNotFoundError):
            driver.reader(under(root, "missing"), 64)

    def test_stream_reads_put_content(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "file")
        data = payload(100_000)
        driver.put_content(path, data)
        assert read_stream(driver, path) == data

    @pytest.mark.slow
    def test_large_stream(self, driver: StorageDriver, root: str, large_stream_bytes: int) -> None:
        """The big case (``--large-stream-mib``): produced and checked chunk by chunk."""
        path = under(root, "large")
        seed = int.from_bytes(os.urandom(8), "big")
        expected = hashlib.sha256()
        writer = driver.writer(path)
        for chunk in random_chunks(large_stream_bytes, seed):
            writer.write(chunk)
            expected.update(chunk)
        assert writer.size == large_stream_bytes
        writer.commit()
        assert driver.stat(path).size == large_stream_bytes
        assert stream_digest(driver, path) == (expected.hexdigest(), large_stream_bytes)

    @pytest.mark.parametrize("where", ["zero", "middle", "size-1", "size"])
    def test_reader_offset(self, driver: StorageDriver, root: str, where: str) -> None:
        path = under(root, "file")
        data = payload(3 * 1024 + 17)
        driver.put_content(path, data)
        size = len(data)
        offset = {"zero": 0, "middle": size // 3, "size-1": size - 1, "size": size}[where]
        assert read_stream(driver, path, offset) == data[offset:]

    @pytest.mark.parametrize("offset", [-1, 1, 2**40], ids=["-1", "size+1", "huge"])
    def test_reader_invalid_offset(self, driver: StorageDriver, root: str, offset: int) -> None:
        path = under(root, "file")
        data = payload(1000)
        driver.put_content(path, data)
        if offset == 1:
            offset = len(data) + 1
        with raises(driver, InvalidOffsetError) as info:
            stream = driver.reader(path, offset)
            stream.close()
        assert info.value.path == path

    def test_reader_offset_on_empty(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "empty")
        driver.put_content(path, b"")
        assert read_stream(driver, path, 0) == b""
        with raises(driver, InvalidOffsetError):
            driver.reader(path, 1).close()

    def test_reader_offset_across_chunks(self, driver: StorageDriver, root: str) -> None:
        """Offsets inside a multi-part stream write (parts of 5 MiB on S3, say)."""
        path = under(root, "parts")
        data = payload(11 * 2**20 + 5)
        writer = driver.writer(path)
        for start in range(0, len(data), 3 * 2**20):
            writer.write(data[start : start + 3 * 2**20])
        writer.commit()
        for offset in (0, 5 * 2**20 - 1, 5 * 2**20, 5 * 2**20 + 1, len(data) - 1, len(data)):
            assert read_stream(driver, path, offset) == data[offset:], f"offset {offset}"

    def test_partial_reads(self, driver: StorageDriver, root: str) -> None:
        """A reader is a stream: read(n) returns at most n bytes and can stop early."""
        path = under(root, "file")
        data = payload(200_000)
        driver.put_content(path, data)
        with contextlib.closing(driver.reader(path, 10)) as stream:
            head = stream.read(100)
            assert 0 < len(head) <= 100 and data[10:].startswith(head)
