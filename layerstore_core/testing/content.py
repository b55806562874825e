"""Conformance: paths, whole-object content (``get_content``/``put_content``) and ``stat``."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ..driver import StorageDriver
from ..errors import InvalidPathError, PathNotFoundError
from ._base import MIB, SuiteBase, payload, raises, under

#: Distribution's valid-path cases (relative to the test root).
VALID_PATHS = [
    "/a", "/2", "/aa", "/a.a", "/0-9/abcdefg", "/abcdefg/z.75", "/abc/1.2.3.4.5-6_zyx/123.z/4",
    "/docker/docker-registry", "/123.abc", "/abc./abc", "/.abc", "/a--b", "/a-.b", "/_.abc",
    "/Docker/docker-registry", "/Abc/Cba", "/a..b", "/...",
]  # fmt: skip

#: Paths every method must reject; ``/`` is rejected only where a file is meant.
INVALID_PATHS: list[Any] = [
    "", "abc", "123.abc", "//bcd", "/abc_123/", "/../x", "/a/./b", "//a", "/a/", "/a//b",
    "/a/..", "/.", "/a b", "/a\x00b", "/ä", "/a\\b", None, 1, b"/a", ["/a"],
]  # fmt: skip

_CALLS: dict[str, Callable[[StorageDriver, Any], object]] = {
    "get_content": lambda d, p: d.get_content(p),
    "put_content": lambda d, p: d.put_content(p, b"x"),
    "reader": lambda d, p: d.reader(p),
    "writer": lambda d, p: d.writer(p),
    "stat": lambda d, p: d.stat(p),
    "list": lambda d, p: d.list(p),
    "move_source": lambda d, p: d.move(p, "/ok"),
    "move_dest": lambda d, p: d.move("/ok", p),
    "delete": lambda d, p: d.delete(p),
    "redirect_url": lambda d, p: d.redirect_url(p),
    "walk": lambda d, p: list(d.walk(p)),
}
_FILE_ONLY = ["get_content", "put_content", "reader", "writer", "move_source", "move_dest",
              "delete", "redirect_url"]  # fmt: skip

#: Distribution's write/read cases: 1 byte, UTF-8, non-UTF-8, 32 random bytes, 1 MiB.
CONTENTS: dict[str, Callable[[], bytes]] = {
    "1-byte": lambda: payload(1),
    "utf8": lambda: "ÃÈÕ ⌘ 日本語 🐳 ".encode() * 7,
    "non-utf8": lambda: b"\xff\xfe\xfd" + payload(29) + b"\xc3\x28",
    "32-random": lambda: payload(32),
    "1-mib": lambda: payload(MIB),
}


@contextlib.contextmanager
def _context(method: str) -> Iterator[None]:
    """Name the method in the failure a loop over methods reports."""
    try:
        yield
    except BaseException as exc:
        exc.add_note(f"while calling {method}")
        raise


class ContentCases(SuiteBase):
    """Path grammar, put/get, truncation, stat."""

    @pytest.mark.parametrize("name", VALID_PATHS)
    def test_valid_path(self, driver: StorageDriver, root: str, name: str) -> None:
        path = root + name
        data = payload(32)
        driver.put_content(path, data)
        assert driver.get_content(path) == data

    @pytest.mark.parametrize("path", INVALID_PATHS, ids=repr)
    def test_invalid_path(self, driver: StorageDriver, path: Any) -> None:
        for method, call in _CALLS.items():
            with _context(method), raises(driver, InvalidPathError):
                call(driver, path)

    def test_root_is_not_a_file(self, driver: StorageDriver) -> None:
        for method in _FILE_ONLY:
            with _context(method), raises(driver, InvalidPathError):
                _CALLS[method](driver, "/")

    @pytest.mark.parametrize("kind", sorted(CONTENTS))
    def test_write_read(self, driver: StorageDriver, root: str, kind: str) -> None:
        path = under(root, "dir", "file")
        data = CONTENTS[kind]()
        driver.put_content(path, data)
        assert driver.get_content(path) == data
        assert driver.stat(path).size == len(data)

    def test_truncate(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "file")
        driver.put_content(path, payload(1024))
        short = payload(10)
        driver.put_content(path, short)
        assert driver.get_content(path) == short
        assert driver.stat(path).size == 10

    def test_empty_content(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "empty")
        driver.put_content(path, b"")
        assert driver.get_content(path) == b""
        info = driver.stat(path)
        assert (info.size, info.is_dir) == (0, False)

    def test_read_nonexistent(self, driver: StorageDriver, root: str) -> None:
        with raises(driver, PathNotFoundError) as info:
            driver.get_content(under(root, "missing"))
        assert info.value.path == under(root, "missing")

    def test_put_content_multiple_times(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "a", "b")
        for _ in range(5):
            data = payload(4096)
            driver.put_content(path, data)
            assert driver.get_content(path) == data

    def test_stat(self, driver: StorageDriver, root: str) -> None:
        dir_path = under(root, "dir")
        path = under(dir_path, "file")
        data = payload(1234)
        driver.put_content(path, data)
        info = driver.stat(path)
        assert (info.path, info.size, info.is_dir) == (path, 1234, False)
        assert isinstance(info.modified, dt.datetime) and info.modified.tzinfo is not None
        folder = driver.stat(dir_path)
        assert (folder.path, folder.is_dir) == (dir_path, True)
        assert driver.stat(root).is_dir

    def test_stat_missing(self, driver: StorageDriver, root: str) -> None:
        driver.put_content(under(root, "dir", "file"), b"x")
        for missing in (under(root, "nothere"), under(root, "dir", "fil"), under(root, "di")):
            with raises(driver, PathNotFoundError):
                driver.stat(missing)

    def test_stat_root(self, driver: StorageDriver, root: str) -> None:
        driver.put_content(under(root, "file"), b"x")
        info = driver.stat("/")
        assert (info.path, info.is_dir) == ("/", True)

    def test_stat_modified_advances(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "file")
        driver.put_content(path, b"first")
        first = driver.stat(path).modified
        time.sleep(1.1)  # object stores keep one-second granularity
        driver.put_content(path, b"second")
        second = driver.stat(path).modified
        assert second > first
        now = dt.datetime.now(dt.UTC)
        assert abs((now - second).total_seconds()) < 300, "modified time is not the current time"

    def test_put_under_a_file_does_not_corrupt_it(self, driver: StorageDriver, root: str) -> None:
        """Putting ``/f/x`` where ``/f`` is a file may fail or not, but ``/f`` must survive."""
        path = under(root, "f")
        driver.put_content(path, b"keep")
        try:
            driver.put_content(under(path, "x"), b"child")
        except Exception as exc:  # a filesystem cannot have both; object stores can
            assert getattr(exc, "driver", None) == driver.name, repr(exc)
        assert driver.get_content(path) == b"keep"
