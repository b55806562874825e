"""Conformance: ``put_content_if_absent``, the atomic create that leases and claims rely on."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ..driver import StorageDriver
from ._base import SuiteBase, payload, under

CONTENDERS = 8


class ConditionalCases(SuiteBase):
    """Exactly one creator wins; the winner's bytes stay; a delete frees the path again."""

    def test_create_once(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "lease")
        assert driver.put_content_if_absent(path, b"first")
        assert not driver.put_content_if_absent(path, b"second")
        assert driver.get_content(path) == b"first"
        driver.delete(path)
        assert driver.put_content_if_absent(path, b"third")
        assert driver.get_content(path) == b"third"

    def test_create_over_put_content(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "lease")
        driver.put_content(path, b"there")
        assert not driver.put_content_if_absent(path, b"mine")
        assert driver.get_content(path) == b"there"

    def test_concurrent_creators(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "lease")
        bodies = [payload(100 + i) for i in range(CONTENDERS)]
        with ThreadPoolExecutor(CONTENDERS) as pool:
            won = list(pool.map(lambda body: driver.put_content_if_absent(path, body), bodies))
        assert won.count(True) == 1
        assert driver.get_content(path) == bodies[won.index(True)]
