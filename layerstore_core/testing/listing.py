"""Conformance: ``list`` — direct children only, absolute paths, missing is an error, paging."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ..driver import StorageDriver, is_component
from ..errors import PathNotFoundError
from ._base import SuiteBase, payload, raises, under

#: More than one page of the usual 1,000-key listing APIs.
MANY_CHILDREN = 1_050


class ListCases(SuiteBase):
    """Listing directories, implied or real."""

    def test_list(self, driver: StorageDriver, root: str) -> None:
        parent = under(root, "parent")
        children = sorted(under(parent, f"child-{i:02d}") for i in range(25))
        for child in children:
            driver.put_content(child, payload(16))
        driver.put_content(under(parent, "sub", "deep", "file"), b"x")
        assert driver.list(root) == [parent]
        assert driver.list(parent) == sorted([*children, under(parent, "sub")])
        assert driver.list(under(parent, "sub")) == [under(parent, "sub", "deep")]

    def test_list_missing(self, driver: StorageDriver, root: str) -> None:
        with raises(driver, PathNotFoundError):
            driver.list(under(root, "missing"))
        driver.put_content(under(root, "dirname", "file"), b"x")
        for missing in (under(root, "dir"), under(root, "dirnam"), under(root, "dirname", "fi")):
            with raises(driver, PathNotFoundError):
                driver.list(missing)

    def test_list_file(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "file")
        driver.put_content(path, b"x")
        with raises(driver, PathNotFoundError):
            driver.list(path)

    def test_list_root(self, driver: StorageDriver, root: str) -> None:
        driver.put_content(under(root, "a", "b"), b"x")
        listed = driver.list("/")
        assert root in listed
        assert all(p.startswith("/") and p.count("/") == 1 for p in listed), listed

    def test_list_names_with_similar_prefixes(self, driver: StorageDriver, root: str) -> None:
        names = ["a", "a-b", "a.b", "a_b", "ab", "b"]
        for name in names:
            driver.put_content(under(root, name, "f"), b"x")
        driver.put_content(under(root, "a0"), b"file")
        expected = sorted(under(root, n) for n in [*names, "a0"])
        assert driver.list(root) == expected

    def test_list_many_children(self, driver: StorageDriver, root: str) -> None:
        parent = under(root, "many")
        children = [under(parent, f"{i:05d}") for i in range(MANY_CHILDREN)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda p: driver.put_content(p, b"x"), children))
        assert driver.list(parent) == children
        assert sum(1 for _ in driver.walk(parent)) == MANY_CHILDREN

    def test_list_and_walk_agree_on_unfinished_writes(
        self, driver: StorageDriver, root: str
    ) -> None:
        """A directory holding unfinished writes: list, walk and stat show the same children.

        Whatever a driver keeps for an unfinished write (an object store's side objects) names
        no child and makes no directory: ``pending`` and ``deep`` below hold nothing else.
        (A directory of more than one listing page: the S3 driver's request-count test.)
        """
        d, half = under(root, "d"), under(root, "d", "half")
        driver.put_content(under(d, "bulk", "x"), b"x")
        driver.put_content(under(d, "file"), b"committed")
        driver.put_content(under(half, "f"), b"committed")
        for unfinished in (under(d, "pending", "w"), under(half, "deep", "w"), under(half, "w")):
            writer = driver.writer(unfinished)
            writer.write(payload(100))
            writer.close()
        walked = list(driver.walk(d))
        for directory in (d, half):
            listed = driver.list(directory)
            below = sorted(i.path for i in walked if i.path.rsplit("/", 1)[0] == directory)
            assert listed == below, f"list and walk of {directory} disagree"
            assert all(is_component(p.rsplit("/", 1)[1]) for p in listed), listed
            for child in (under(directory, "pending"), under(directory, "deep")):
                try:
                    stated = driver.stat(child).path
                except PathNotFoundError:
                    stated = None
                assert (child in listed) == (stated == child), f"list and stat of {child}"
        assert {under(d, "bulk"), under(d, "file"), half} <= set(driver.list(d))
        assert under(half, "f") in driver.list(half)
