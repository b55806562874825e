"""Conformance: one driver object used from several threads at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from ..driver import StorageDriver
from ._base import MIB, SuiteBase, payload, read_stream, under

THREADS = 8


class ConcurrencyCases(SuiteBase):
    """Concurrent readers, concurrent writers, put racing get."""

    def test_concurrent_stream_reads(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "file")
        data = payload(4 * MIB)
        driver.put_content(path, data)
        offsets = [0, 1, MIB, MIB + 1, 2 * MIB - 1, 3 * MIB, len(data) - 1, len(data)] * 2

        def read(offset: int) -> bool:
            return read_stream(driver, path, offset) == data[offset:]

        with ThreadPoolExecutor(THREADS) as pool:
            assert all(pool.map(read, offsets))

    def test_concurrent_file_streams(self, driver: StorageDriver, root: str) -> None:
        def stream(i: int) -> bool:
            path = under(root, f"stream-{i}")
            data = payload(MIB + i * 4099)
            writer = driver.writer(path)
            for start in range(0, len(data), 100_000):
                writer.write(data[start : start + 100_000])
            writer.commit()
            return read_stream(driver, path) == data

        with ThreadPoolExecutor(THREADS) as pool:
            assert all(pool.map(stream, range(THREADS * 2)))

    def test_put_is_atomic_for_readers(self, driver: StorageDriver, root: str) -> None:
        """A reader racing ``put_content`` sees the old or the new content, never a mix."""
        path = under(root, "file")
        versions = [payload(MIB), payload(2 * MIB), payload(MIB // 2)]
        driver.put_content(path, versions[0])
        stop = threading.Event()
        torn: list[int] = []

        def read() -> None:
            while not stop.is_set():
                seen = driver.get_content(path)
                if seen not in versions:
                    torn.append(len(seen))

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for i in range(12):
                driver.put_content(path, versions[i % 3])
        finally:
            stop.set()
            reader.join()
        assert not torn, f"torn reads of sizes {torn[:5]}"
