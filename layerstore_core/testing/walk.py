"""Conformance: ``walk`` — every descendant, depth first, siblings in byte order."""

from __future__ import annotations

from ..driver import StorageDriver, walk_order_key
from ..errors import PathNotFoundError
from ._base import SuiteBase, payload, raises, under

#: Names chosen so that byte order, path order and naive string order of full paths disagree:
#: ``a/x`` must come before ``a-b`` although ``"a-b" < "a/x"`` as strings.
_TREE = [
    "a/x", "a/y/z", "a-b", "a.b/c", "a_b", "ab/c/d/e", "B", "_", "0", "a0", "z/1", "z/10", "z/2",
]  # fmt: skip


def _expected(root: str, files: dict[str, int]) -> list[tuple[str, bool, int]]:
    dirs = set()
    for path in files:
        parts = path.split("/")
        for i in range(len(root.split("/")) + 1, len(parts)):
            dirs.add("/".join(parts[:i]))
    entries = [(p, False, n) for p, n in files.items()] + [(d, True, 0) for d in dirs]
    return sorted(entries, key=lambda e: walk_order_key(e[0]))


class WalkCases(SuiteBase):
    """Order and completeness of walk."""

    def test_walk_order_and_completeness(self, driver: StorageDriver, root: str) -> None:
        files = {under(root, *name.split("/")): i * 3 + 1 for i, name in enumerate(_TREE)}
        for path, size in files.items():
            driver.put_content(path, payload(size))
        seen = [(i.path, i.is_dir, i.size if not i.is_dir else 0) for i in driver.walk(root)]
        assert seen == _expected(root, files)

    def test_walk_subdirectory(self, driver: StorageDriver, root: str) -> None:
        driver.put_content(under(root, "d", "e", "f"), b"abc")
        driver.put_content(under(root, "de", "f"), b"x")
        driver.put_content(under(root, "d", "g"), b"xy")
        seen = [(i.path, i.is_dir) for i in driver.walk(under(root, "d"))]
        assert seen == [
            (under(root, "d", "e"), True),
            (under(root, "d", "e", "f"), False),
            (under(root, "d", "g"), False),
        ]

    def test_walk_file_info(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "dir", "file")
        driver.put_content(path, payload(777))
        infos = {i.path: i for i in driver.walk(root)}
        assert infos[path].size == 777 and not infos[path].is_dir
        # listings and HEAD may round differently (S3: milliseconds vs seconds)
        skew = abs((infos[path].modified - driver.stat(path).modified).total_seconds())
        assert skew < 2, f"walk and stat disagree on modified by {skew}s"
        assert infos[under(root, "dir")].is_dir

    def test_walk_root(self, driver: StorageDriver, root: str) -> None:
        driver.put_content(under(root, "a", "b"), b"x")
        paths = [i.path for i in driver.walk("/")]
        assert root in paths and under(root, "a", "b") in paths
        assert paths == sorted(paths, key=walk_order_key)

    def test_walk_missing(self, driver: StorageDriver, root: str) -> None:
        driver.put_content(under(root, "dir", "file"), b"x")
        with raises(driver, PathNotFoundError):
            list(driver.walk(under(root, "missing")))
        with raises(driver, PathNotFoundError):
            list(driver.walk(under(root, "di")))
