"""Conformance: ``redirect_url`` — None, or a URL that really serves the content."""

from __future__ import annotations

import urllib.request

import pytest

from ..driver import StorageDriver
from ..errors import UnsupportedMethodError
from ._base import SuiteBase, payload, raises, under


class RedirectCases(SuiteBase):
    """Direct-download URLs."""

    def test_redirect_get(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "blob")
        data = payload(4096)
        driver.put_content(path, data)
        url = driver.redirect_url(path)
        if url is None:
            return  # the driver has no direct URLs: allowed
        with urllib.request.urlopen(url, timeout=60) as response:
            assert response.status == 200
            assert response.read() == data

    def test_redirect_head(self, driver: StorageDriver, root: str) -> None:
        path = under(root, "blob")
        data = payload(4096)
        driver.put_content(path, data)
        url = driver.redirect_url(path, method="HEAD")
        if url is None:
            return
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
            length = response.headers.get("Content-Length")
            assert length is None or int(length) == len(data)

    @pytest.mark.parametrize("method", ["PUT", "DELETE", "get"])
    def test_redirect_unsupported_method(
        self, driver: StorageDriver, root: str, method: str
    ) -> None:
        path = under(root, "blob")
        driver.put_content(path, b"x")
        with raises(driver, UnsupportedMethodError):
            driver.redirect_url(path, method=method)
