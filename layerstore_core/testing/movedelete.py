"""Conformance: ``move`` (overwrites, missing source leaves dest alone) and recursive ``delete``."""

from __future__ import annotations

from ..driver import StorageDriver
from ..errors import PathNotFoundError, WriterClosedError
from ._base import MIB, SuiteBase, payload, raises, under


class MoveDeleteCases(SuiteBase):
    """Moves and deletes, including Distribution's prefix traps."""

    def test_move(self, driver: StorageDriver, root: str) -> None:
        source, dest = under(root, "src", "file"), under(root, "new", "dir", "file")
        data = payload(32)
        driver.put_content(source, data)
        driver.move(source, dest)
        assert driver.get_content(dest) == data
        with raises(driver, PathNotFoundError):
            driver.get_content(source)

    def test_move_large(self, driver: StorageDriver, root: str) -> None:
        source, dest = under(root, "src"), under(root, "dst")
        data = payload(12 * MIB + 1)
        writer = driver.writer(source)
        writer.write(data)
        writer.commit()
        driver.move(source, dest)
        assert driver.stat(dest).size == len(data)
        assert driver.get_content(dest) == data

    def test_move_committed(self, driver: StorageDriver, root: str) -> None:
        """What a writer committed in place, moved; a writer not committed is refused."""
        source, dest = under(root, "src"), under(root, "dst")
        data = payload(5000)
        writer = driver.writer(source)
        with raises(driver, WriterClosedError):
            driver.move_committed(writer, dest)
        writer.write(data)
        writer.commit()
        driver.put_content(dest, payload(64))
        driver.move_committed(writer, dest)
        assert driver.get_content(dest) == data
        with raises(driver, PathNotFoundError):
            driver.stat(source)

    def test_move_overwrite(self, driver: StorageDriver, root: str) -> None:
        source, dest = under(root, "src"), under(root, "dst")
        data = payload(32)
        driver.put_content(source, data)
        driver.put_content(dest, payload(64))
        driver.move(source, dest)
        assert driver.get_content(dest) == data
        assert driver.stat(dest).size == 32
        with raises(driver, PathNotFoundError):
            driver.get_content(source)

    def test_move_nonexistent(self, driver: StorageDriver, root: str) -> None:
        source, dest = under(root, "src"), under(root, "dst")
        data = payload(32)
        driver.put_content(dest, data)
        with raises(driver, PathNotFoundError) as info:
            driver.move(source, dest)
        assert info.value.path == source
        assert driver.get_content(dest) == data

    def test_move_nonexistent_under_a_file(self, driver: StorageDriver, root: str) -> None:
        notadir = under(root, "notadir")
        driver.put_content(notadir, b"file")
        with raises(driver, PathNotFoundError):
            driver.move(under(notadir, "foo"), under(notadir, "bar"))
        assert driver.get_content(notadir) == b"file"

    def test_delete(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "file")
        driver.put_content(path, payload(32))
        driver.delete(path)
        with raises(driver, PathNotFoundError):
            driver.get_content(path)
        with raises(driver, PathNotFoundError):
            driver.stat(path)

    def test_delete_nonexistent(self, driver: StorageDriver, root: str) -> None:
        driver.put_content(under(root, "file"), b"x")
        with raises(driver, PathNotFoundError):
            driver.delete(under(root, "missing"))
        with raises(driver, PathNotFoundError):
            driver.delete(under(root, "fil"))
        assert driver.get_content(under(root, "file")) == b"x"

    def test_delete_folder(self, driver: StorageDriver, root: str) -> None:
        folder = under(root, "folder")
        files = [under(folder, "a"), under(folder, "b"), under(folder, "sub", "c")]
        for path in files:
            driver.put_content(path, payload(32))
        driver.delete(under(folder, "a"))
        for path in files[1:]:
            assert driver.stat(path).size == 32
        driver.delete(folder)
        for path in files:
            with raises(driver, PathNotFoundError):
                driver.get_content(path)
        with raises(driver, PathNotFoundError):
            driver.stat(folder)
        with raises(driver, PathNotFoundError):
            driver.list(folder)

    def test_delete_only_deletes_subpaths(self, driver: StorageDriver, root: str) -> None:
        kept = [under(root, "x", "fsuffix"), under(root, "x", "xsuffix", "f")]
        doomed = [under(root, "x", "f"), under(root, "x", "x", "f")]
        for path in kept + doomed:
            driver.put_content(path, path.encode())
        driver.delete(under(root, "x", "f"))
        driver.delete(under(root, "x", "x"))
        for path in doomed:
            with raises(driver, PathNotFoundError):
                driver.get_content(path)
        for path in kept:
            assert driver.get_content(path) == path.encode()

    def test_delete_many(self, driver: StorageDriver, root: str) -> None:
        doomed = [under(root, "d", f"f{i}") for i in range(12)] + [under(root, "e", "x", "f")]
        kept = [under(root, "d", "kept"), under(root, "d", "f1x"), under(root, "dir", "sub", "f")]
        for path in doomed + kept:
            driver.put_content(path, path.encode())
        driver.delete_many([*doomed, under(root, "missing"), under(root, "dir"),
                            under(root, "dir", "sub"), doomed[0]])
        for path in doomed:
            with raises(driver, PathNotFoundError):
                driver.stat(path)
        for path in kept:  # siblings, a name with the same start, a directory named outright
            assert driver.get_content(path) == path.encode()
        with raises(driver, PathNotFoundError):  # its last file gone, the directory is too
            driver.list(under(root, "e", "x"))
        assert driver.list(under(root, "d")) == sorted(kept[:2])
        driver.delete_many([])
