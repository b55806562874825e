"""The azure driver beyond the suite: SAS redirects, copy polling, delete, config, errors."""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobProperties, ContainerClient, StorageErrorCode
from layerstore_azure import AzureDriver
from layerstore_azure.bucket import wait_for_copy
from layerstore_azure.errors import CONFIG_MESSAGES, ERROR_TABLE, translate

from layerstore_core.discovery import driver_class, load_driver
from layerstore_core.driver import StorageDriver
from layerstore_core.errors import InvalidOffsetError, PathNotFoundError, StorageDriverError
from layerstore_core.params import ParameterError
from layerstore_core.testing import Backend
from tests.backends import azure as azure_backend
from tests.backends.azure import ACCOUNT, ACCOUNT_KEY, CONTAINER, Azurite


@pytest.fixture
def driver(backend_azure: Backend) -> Iterator[StorageDriver]:
    d = backend_azure.make()
    yield d
    d.close()


def fetch(url: str, method: str = "GET", **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


# -- redirects --------------------------------------------------------------------------------


def test_sas_url_serves_content_and_ranges(driver: StorageDriver) -> None:
    data = os.urandom(300_000)
    driver.put_content("/blob/data", data)
    url = driver.redirect_url("/blob/data")
    assert url is not None and "sig=" in url and "sp=r" in url
    assert fetch(url) == (200, data)
    assert fetch(url, Range="bytes=100-199") == (206, data[100:200])
    status, body = fetch(url, "HEAD")
    assert status == 200 and body == b""


def test_sas_url_is_read_only_and_expires(backend_azure: Backend) -> None:
    d = load_driver("azure", **{**backend_azure.params, "redirectexpiry": 3})
    d.put_content("/ro", b"abc")
    url = d.redirect_url("/ro")
    assert url is not None
    assert fetch(url) == (200, b"abc")  # expiry is whole seconds: at least 2 s left
    with pytest.raises(urllib.error.HTTPError) as put:
        fetch(url, "PUT", **{"x-ms-blob-type": "BlockBlob"})
    assert put.value.code == 403
    time.sleep(4.5)
    with pytest.raises(urllib.error.HTTPError) as late:
        fetch(url)
    assert late.value.code == 403
    d.delete("/ro")
    d.close()


# -- move and copy polling --------------------------------------------------------------------


def test_move_copies_server_side_and_overwrites(driver: StorageDriver) -> None:
    driver.put_content("/m/src", b"new")
    driver.put_content("/m/dst", b"old content")
    driver.move("/m/src", "/m/dst")
    assert driver.get_content("/m/dst") == b"new"
    with pytest.raises(PathNotFoundError):
        driver.stat("/m/src")
    with pytest.raises(PathNotFoundError):
        driver.move("/m/src", "/m/dst")
    assert driver.get_content("/m/dst") == b"new"


def _props(status: str | None, copy_id: str = "c1", description: str = "") -> BlobProperties:
    props = BlobProperties()
    props.copy.id, props.copy.status = copy_id, status
    props.copy.status_description, props.copy.progress = description, "1/2"
    return props


def _poll(statuses: list[BlobProperties], **kw: Any) -> list[float]:
    """Run wait_for_copy over a sequence of copy states (Azurite copies at once, Azure may not)."""
    sleeps: list[float] = []
    states = iter(statuses)
    wait_for_copy(lambda: next(states), "c1", sleep=sleeps.append, **kw)
    return sleeps


def test_move_onto_itself_keeps_content(driver: StorageDriver) -> None:
    driver.put_content("/same", b"data")
    driver.move("/same", "/same")  # copy-then-delete would delete the only copy
    assert driver.get_content("/same") == b"data"
    with pytest.raises(PathNotFoundError):
        driver.move("/nothing", "/nothing")


def test_reader_error_after_open_names_the_driver(driver: StorageDriver) -> None:
    driver.put_content("/gone", os.urandom(9 * 2**20))  # the first 4 MiB come with the open
    with driver.reader("/gone") as stream:
        driver.delete("/gone")
        with pytest.raises(StorageDriverError) as info:
            stream.read()
    assert info.value.driver == "azure" and info.value.path == "/gone"


def test_copy_polling_waits_with_backoff_until_success() -> None:
    sleeps = _poll([_props("pending")] * 5 + [_props("success")])
    assert len(sleeps) == 5 and sleeps == sorted(sleeps) and sleeps[0] < sleeps[-1]


@pytest.mark.parametrize(
    "states",
    [
        [_props("pending"), _props("failed", description="500 source unreadable")],
        [_props("aborted")],
        [_props("pending", copy_id="other")],
    ],
)
def test_copy_polling_reports_failure(states: list[BlobProperties]) -> None:
    with pytest.raises(StorageDriverError, match="copy"):
        _poll(states)


def test_copy_polling_times_out() -> None:
    with pytest.raises(StorageDriverError, match="still pending"):
        _poll([_props("pending")] * 100, timeout=1.0)


def test_copy_polling_on_a_real_completed_copy(azurite: Azurite, driver: StorageDriver,
                                               backend_azure: Backend) -> None:  # fmt: skip
    root = backend_azure.params["rootdirectory"]
    driver.put_content("/cp/a", b"payload")
    with ContainerClient.from_connection_string(azurite.connection_string, CONTAINER) as c:
        src, dst = c.get_blob_client(f"{root}/cp/a"), c.get_blob_client(f"{root}/cp/b")
        started = dst.start_copy_from_url(src.url)
        wait_for_copy(dst.get_blob_properties, started["copy_id"])
    assert driver.get_content("/cp/b") == b"payload"


def test_get_of_a_blob_replaced_mid_read_is_a_clear_error(driver: StorageDriver) -> None:
    """No retry loop: the SDK's If-Match on later chunks makes a replaced blob fail loudly."""
    assert isinstance(driver, AzureDriver)
    key = driver.key("/changing")
    driver.put_content("/changing", os.urandom(9 * 2**20))  # more than one 4 MiB chunk
    stream = driver.bucket.get(key)
    driver.put_content("/changing", os.urandom(9 * 2**20))
    with pytest.raises(StorageDriverError, match="replaced while it was read"):
        stream.read()
    stream.close()


# -- delete -----------------------------------------------------------------------------------


def test_delete_batches_and_spares_siblings(driver: StorageDriver) -> None:
    for i in range(300):  # more than one 256-blob batch
        driver.put_content(f"/a/f{i:03d}", b"x")
    driver.put_content("/ab", b"sibling")
    driver.put_content("/ab-c/x", b"sibling too")
    driver.delete("/a")
    with pytest.raises(PathNotFoundError):
        driver.list("/a")
    assert driver.list("/") == ["/ab", "/ab-c"]
    with pytest.raises(PathNotFoundError):
        driver.delete("/a")
    driver.delete("/ab")
    driver.delete("/ab-c")


# -- reader -----------------------------------------------------------------------------------


def test_reader_offsets(driver: StorageDriver) -> None:
    driver.put_content("/r", b"0123456789")
    with driver.reader("/r", 10) as r:
        assert r.read() == b""
    with pytest.raises(InvalidOffsetError) as info:
        driver.reader("/r", 11)
    assert info.value.offset == 11 and info.value.driver == "azure"
    with pytest.raises(PathNotFoundError):
        driver.reader("/nothing", 0)


# -- configuration ----------------------------------------------------------------------------


def test_entry_point_and_connection_string(azurite: Azurite, backend_azure: Backend) -> None:
    assert driver_class("azure") is AzureDriver
    root = backend_azure.params["rootdirectory"]
    d = load_driver(
        "azure", connectionstring=azurite.connection_string, container=CONTAINER,
        rootdirectory=f"/{root}/", chunksize="65536", maxconcurrency="2",
    )  # fmt: skip
    d.put_content("/cs", b"via connection string")
    assert backend_azure.make().get_content("/cs") == b"via connection string"
    assert d.redirect_url("/cs") is not None
    d.delete("/cs")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"accountname": ACCOUNT, "accountkey": "k"}, "container"),
        ({"container": "Bad_Name", "accountname": ACCOUNT, "accountkey": "k"}, "container"),
        ({"container": "ok-name", "accountname": ACCOUNT}, "exactly one"),
        ({"container": "ok-name", "accountname": ACCOUNT, "accountkey": "k",
          "credential": "default"}, "exactly one"),
        ({"container": "ok-name", "accountname": ACCOUNT, "credential": "managed"}, "credential"),
        ({"container": "ok-name", "connectionstring": "x", "endpoint": "http://h"},
         "connectionstring"),
        ({"container": "ok-name", "accountkey": "k"}, "accountname"),
        ({"container": "ok-name", "accountname": ACCOUNT, "accountkey": "k", "chunksize": 10},
         "chunksize"),
        ({"container": "ok-name", "accountname": ACCOUNT, "accountkey": "k", "maxconcurrency": 0},
         "maxconcurrency"),
        ({"container": "ok-name", "accountname": ACCOUNT, "accountkey": "k", "redirectexpiry": 0},
         "redirectexpiry"),
        ({"container": "ok-name", "accountname": ACCOUNT, "accountkey": "k", "maxretries": -1},
         "maxretries"),
        ({"container": "ok-name", "accountname": ACCOUNT, "accountkey": "k", "region": "x"},
         "unknown parameter"),
    ],
)  # fmt: skip
def test_bad_parameters_are_clear(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        load_driver("azure", **params)


def test_default_credential_builds_without_io() -> None:
    d = load_driver("azure", container="ok-name", accountname=ACCOUNT, credential="default")
    assert isinstance(d, AzureDriver)
    assert hasattr(d.bucket.container.credential, "get_token")
    d.close()


def test_default_credential_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "azure.identity", None)  # makes the import fail
    with pytest.raises(ParameterError, match=r"layerstore-azure\[identity\]"):
        load_driver("azure", container="ok-name", accountname=ACCOUNT, credential="default")


def test_params_repr_hides_secrets() -> None:
    d = load_driver("azure", container="ok-name", accountname=ACCOUNT, accountkey=ACCOUNT_KEY)
    assert isinstance(d, AzureDriver)
    assert ACCOUNT_KEY not in repr(d.params)
    assert d.params.account_url == f"https://{ACCOUNT}.blob.core.windows.net"


# -- errors -----------------------------------------------------------------------------------


def test_error_table_uses_real_service_codes() -> None:
    # Documented in the Blob service's error-code list but absent from the SDK's enum.
    documented = {"CannotVerifyCopySource", "AuthorizationPermissionMismatch"}
    codes = {c.value for c in StorageErrorCode} | documented
    assert set(ERROR_TABLE) <= codes
    assert set(CONFIG_MESSAGES) <= codes


def test_missing_container_is_a_loud_backend_error(backend_azure: Backend) -> None:
    d = load_driver("azure", **{**backend_azure.params, "container": "no-such-container"})
    with pytest.raises(StorageDriverError, match="container does not exist") as info:
        d.list("/")
    assert not isinstance(info.value, PathNotFoundError)
    assert isinstance(info.value.__cause__, HttpResponseError)


def test_translate_falls_back_to_backend_error() -> None:
    missing = ResourceNotFoundError("gone")
    missing.error_code = "BlobNotFound"
    assert type(translate(missing, "/p")) is PathNotFoundError
    other = HttpResponseError("boom")
    other.error_code = "InternalError"
    assert type(translate(other, "/p")) is StorageDriverError


def test_azurite_fixture_fails_loudly_without_node_modules(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(azure_backend, "AZURITE_MAIN", tmp_path / "missing" / "main.js")
    with pytest.raises(RuntimeError, match=r"npm ci --prefix tests/azurite"):
        Azurite(tmp_path / "loc")
