"""Conformance: what resumable uploads lean on — ``stat_file``, ``resume_writer``, ``commit_to``."""

from __future__ import annotations

import pytest

from ..driver import StorageDriver, WriterState
from ..errors import PathNotFoundError
from ._base import MIB, SuiteBase, payload, raises, under


class ResumeCases(SuiteBase):
    """A file-only stat, append-or-create writers and a commit that lands at another path."""

    def test_stat_file(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "dir", "file")
        driver.put_content(path, payload(77))
        info = driver.stat_file(path)
        assert (info.path, info.size, info.is_dir) == (path, 77, False)
        for not_a_file in (under(root, "dir"), under(root, "dir", "fil"), under(root, "nothing")):
            with raises(driver, PathNotFoundError):
                driver.stat_file(not_a_file)

    def test_resume_writer_fresh_stores_nothing_until_written(
        self, driver: StorageDriver, root: str
    ) -> None:
        path = under(root, "upload")
        writer = driver.resume_writer(path)
        assert writer.size == 0
        writer.release()
        with raises(driver, PathNotFoundError):
            driver.stat(path)
        first, second = payload(1000), payload(3000)
        writer = driver.resume_writer(path)
        writer.write(first)
        writer.close()
        writer = driver.resume_writer(path)
        assert writer.size == len(first)
        writer.write(second)
        writer.commit()
        assert driver.get_content(path) == first + second

    def test_fresh_rivals(self, driver: StorageDriver, root: str) -> None:
        """``fresh_writes_fenced``: a fresh write stores nothing before its close.

        What lets an upload on such a driver skip its empty data write: a rival that looks
        while the first chunk is being written finds nothing, and the closes decide
        (conformance ``OneWriterCases``). Without it the bytes land at the path as they come.
        """
        path = under(root, "upload")
        first = driver.resume_writer(path)
        first.write(payload(3000, seed=4))
        if driver.fresh_writes_fenced:
            rival = driver.resume_writer(path)
            assert rival.size == 0
            rival.release()
            with raises(driver, PathNotFoundError):
                driver.stat(path)
        else:
            assert driver.stat(path).is_dir is False
        first.close()
        again = driver.resume_writer(path)
        assert again.size == 3000
        again.release()

    def test_resume_writer_continues_committed(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "file")
        driver.put_content(path, b"committed")
        writer = driver.resume_writer(path)
        assert writer.size == 9
        writer.write(b"+more")
        writer.commit()
        assert driver.get_content(path) == b"committed+more"

    @pytest.mark.parametrize("sizes", [[5000], [6 * MIB + 1, 3]], ids=["one-part", "parts"])
    def test_commit_to(self, driver: StorageDriver, root: str, sizes: list[int]) -> None:
        """Like commit then move: the content at ``dest`` (replaced), nothing left behind.

        Where the driver keeps the write (``commit_keeps_write``) it is left as its last close
        left it until its path is deleted, and a retried commit (resume, the same bytes
        again, commit) gives the same content.
        """
        source, dest = under(root, "uploads", "data"), under(root, "blobs", "data")
        driver.put_content(dest, b"old content")
        expected = b""
        for number, size in enumerate(sizes):
            writer = driver.resume_writer(source)
            assert writer.size == len(expected)
            data = payload(size)
            writer.write(data)
            expected += data
            if number < len(sizes) - 1:
                writer.close()
        driver.commit_to(writer, dest)
        assert writer.state is WriterState.COMMITTED
        assert driver.get_content(dest) == expected
        if driver.commit_keeps_write and len(sizes) > 1:
            again = driver.writer(source, append=True)
            assert again.size == len(expected) - sizes[-1]
            again.write(data)
            again.commit()
            assert driver.get_content(source) == expected
            driver.delete_many([source])
        with raises(driver, PathNotFoundError):
            driver.stat(source)
        with raises(driver, PathNotFoundError):
            driver.writer(source, append=True)
