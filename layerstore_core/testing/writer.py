"""Conformance: the resumable FileWriter — append, close/resume (also elsewhere), cancel."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from ..driver import FileWriter, StorageDriver
from ..errors import PathNotFoundError, WriterClosedError
from ._base import GCS_CHUNK, KIB, MIB, S3_MIN_PART, SuiteBase, payload, raises, under
from .backend import Backend

#: Sessions of one resumable write: a session is a list of ``write()`` sizes, then close.
#: "large" crosses S3's 5 MiB parts and GCS's 256 KiB chunks; the others stay below them.
APPEND_PATTERNS: dict[str, list[list[int]]] = {
    "small": [[32], [32], [32]],
    "odd-small": [[1, 30], [7], [1000, 3]],
    "below-gcs-chunk": [[GCS_CHUNK - 1], [2], [GCS_CHUNK + 1]],
    "large": [[6 * MIB + 1], [S3_MIN_PART - 3], [3 * MIB, 3 * MIB + 17]],
    "many-small-writes": [[64 * KIB] * 90, [100 * KIB] * 3, [1]],
}

#: The child side of the cross-process resume: start a write, send data, close.
_CHILD = """
import json, sys
from layerstore_core import load_driver
spec = json.loads(sys.argv[1])
driver = load_driver(spec["driver"], **spec["params"])
writer = driver.writer(spec["path"])
writer.write(sys.stdin.buffer.read())
writer.close()
print(writer.size)
driver.close()
"""


def _start_elsewhere(backend: Backend, path: str, data: bytes) -> None:
    """Start a write of ``data`` at ``path`` and close it: in a child process where possible."""
    if not backend.cross_process:
        other = backend.make()  # a separate driver object, the nearest thing to a process
        writer = other.writer(path)
        writer.write(data)
        writer.close()
        return
    spec = json.dumps({"driver": backend.driver, "params": backend.params, "path": path})
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, spec], input=data, capture_output=True, timeout=300
    )
    assert done.returncode == 0, f"child failed:\n{done.stderr.decode(errors='replace')}"
    assert done.stdout.split()[-1] == str(len(data)).encode()


class WriterCases(SuiteBase):
    """Resumable writes: append after close, zero-byte starts, cancel, use after finish."""

    @pytest.mark.parametrize("pattern", sorted(APPEND_PATTERNS))
    def test_continue_stream_append(self, driver: StorageDriver, root: str, pattern: str) -> None:
        path = under(root, "upload")
        sessions = APPEND_PATTERNS[pattern]
        expected = bytearray()
        for number, sizes in enumerate(sessions):
            writer = driver.writer(path, append=number > 0)
            assert writer.size == len(expected)
            for size in sizes:
                data = payload(size)
                writer.write(data)
                expected += data
            assert writer.size == len(expected)
            if number < len(sessions) - 1:
                writer.close()
            else:
                writer.commit()
        assert driver.stat(path).size == len(expected)
        assert driver.get_content(path) == expected

    def test_zero_byte_stream_then_append(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "zero")
        writer = driver.writer(path)
        assert writer.write(b"") == 0
        writer.commit()
        assert driver.get_content(path) == b""
        assert driver.stat(path).size == 0
        data = payload(100)
        writer = driver.writer(path, append=True)
        assert writer.size == 0
        writer.write(data)
        writer.commit()
        assert driver.get_content(path) == data

    def test_zero_byte_content_then_append(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "zero")
        driver.put_content(path, b"")
        data = payload(100)
        writer = driver.writer(path, append=True)
        assert writer.size == 0
        writer.write(data)
        writer.commit()
        assert driver.get_content(path) == data

    def test_append_to_committed_content(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "file")
        head, tail = payload(1000), payload(GCS_CHUNK + 3)
        driver.put_content(path, head)
        writer = driver.writer(path, append=True)
        assert writer.size == len(head)
        writer.write(tail)
        writer.commit()
        assert driver.get_content(path) == head + tail

    def test_append_to_missing(self, driver: StorageDriver, root: str) -> None:
        with raises(driver, PathNotFoundError):
            driver.writer(under(root, "missing"), append=True)

    def test_fresh_writer_discards_unfinished(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "upload")
        writer = driver.writer(path)
        writer.write(payload(5000))
        writer.close()
        data = payload(300)
        writer = driver.writer(path, append=False)
        assert writer.size == 0
        writer.write(data)
        writer.commit()
        assert driver.get_content(path) == data

    def test_cancel_discards(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "upload")
        writer = driver.writer(path)
        writer.write(payload(GCS_CHUNK + 5))
        writer.cancel()
        with raises(driver, PathNotFoundError):
            driver.get_content(path)
        with raises(driver, PathNotFoundError):
            driver.writer(path, append=True)

    @pytest.mark.parametrize("size", [100, S3_MIN_PART + 7], ids=["small", "large"])
    def test_cancel_resumed_write(self, driver: StorageDriver, root: str, size: int) -> None:
        path = under(root, "upload")
        writer = driver.writer(path)
        writer.write(payload(size))
        writer.close()
        writer = driver.writer(path, append=True)
        assert writer.size == size
        writer.write(payload(10))
        writer.cancel()
        with raises(driver, PathNotFoundError):
            driver.get_content(path)
        with raises(driver, PathNotFoundError):
            driver.writer(path, append=True)

    @pytest.mark.parametrize("size", [100, S3_MIN_PART + 7], ids=["small", "large"])
    def test_release_keeps_the_closed_write(
        self, driver: StorageDriver, root: str, size: int
    ) -> None:
        """release() after a resume that only asked the size leaves the write as it was."""
        path = under(root, "upload")
        data = payload(size)
        writer = driver.writer(path)
        writer.write(data)
        writer.close()
        for _ in range(2):
            writer = driver.writer(path, append=True)
            assert writer.size == size
            writer.release()
            writer.close()  # a no-op after release, so `with` blocks are safe
        writer = driver.writer(path, append=True)
        assert writer.size == size
        writer.commit()
        assert driver.get_content(path) == data

    def test_release_after_writes(self, driver: StorageDriver, root: str) -> None:
        """release() after writes is close(): nothing written is lost."""
        path = under(root, "upload")
        head, more = payload(GCS_CHUNK + 5), payload(S3_MIN_PART + 11)
        writer = driver.writer(path)
        writer.write(head)
        writer.close()
        writer = driver.writer(path, append=True)
        writer.write(more)
        writer.release()
        with raises(driver, WriterClosedError):
            writer.write(b"x")
        writer = driver.writer(path, append=True)
        assert writer.size == len(head) + len(more)
        writer.commit()
        assert driver.get_content(path) == head + more

    @pytest.mark.parametrize("finish", ["close", "commit", "cancel", "release"])
    def test_use_after_finish(self, driver: StorageDriver, root: str, finish: str) -> None:
        path = under(root, "upload")
        writer = driver.writer(path)
        writer.write(b"data")
        getattr(writer, finish)()
        calls: dict[str, Callable[[FileWriter], object]] = {
            "write": lambda w: w.write(b"more"),
            "commit": lambda w: w.commit(),
            "cancel": lambda w: w.cancel(),
            "release": lambda w: w.release(),
        }
        if finish == "close":
            calls["close"] = lambda w: w.close()
        for name, call in calls.items():
            with raises(driver, WriterClosedError) as info:
                call(writer)
            assert info.value.path == path, name
        assert writer.size == 4
        if finish in ("close", "release"):
            driver.writer(path, append=True).cancel()
        if finish != "close":
            writer.close()  # after commit/cancel/release a no-op, so `with` blocks are safe

    def test_writer_as_context_manager(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "upload")
        data = payload(500)
        with driver.writer(path) as writer:
            writer.write(data)
        with driver.writer(path, append=True) as writer:
            assert writer.size == 500
            writer.commit()
        assert driver.get_content(path) == data

    @pytest.mark.parametrize("size", [1000, 6 * MIB + 3], ids=["small", "large"])
    def test_resume_from_another_process(
        self, driver: StorageDriver, conformance_backend: Backend, root: str, size: int
    ) -> None:
        """A write closed by another process (or driver object) continues here."""
        path = under(root, "upload")
        head, tail = payload(size), payload(MIB + 7)
        _start_elsewhere(conformance_backend, path, head)
        writer = driver.writer(path, append=True)
        assert writer.size == size
        writer.write(tail)
        writer.commit()
        assert driver.stat(path).size == size + len(tail)
        assert driver.get_content(path) == head + tail
