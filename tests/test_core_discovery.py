import dataclasses
from importlib.metadata import EntryPoint

import pytest

from layerstore_core import (
    DriverLoadError,
    DriverNotFoundError,
    ParameterError,
    StorageDriver,
    available_drivers,
    discovery,
    load_driver,
)
from layerstore_core.drivers.filesystem import FilesystemDriver
from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.params import describe_params, parse_params


def _ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=discovery.GROUP)


@pytest.fixture
def builtins_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Discovery sees only the core's two drivers, whatever else this environment installed."""
    found = {
        "filesystem": [_ep("filesystem", "layerstore_core.drivers.filesystem:FilesystemDriver")],
        "inmemory": [_ep("inmemory", "layerstore_core.drivers.inmemory:InMemoryDriver")],
    }
    monkeypatch.setattr(discovery, "_entry_points", lambda: found)


def test_available_drivers_lists_builtins() -> None:
    names = available_drivers()
    assert {"filesystem", "inmemory"} <= set(names)
    assert names == sorted(names)


def test_load_builtin_drivers(tmp_path: object) -> None:
    assert isinstance(load_driver("inmemory"), InMemoryDriver)
    fs = load_driver("filesystem", rootdirectory=str(tmp_path))
    assert isinstance(fs, FilesystemDriver) and fs.name == "filesystem"


@pytest.mark.parametrize(
    ("name", "package"),
    [("s3", "layerstore-s3"), ("gcs", "layerstore-gcs"), ("azure", "layerstore-azure")],
)
def test_missing_cloud_driver_says_what_to_install(
    builtins_only: None, name: str, package: str
) -> None:
    with pytest.raises(DriverNotFoundError) as info:
        load_driver(name)
    message = str(info.value)
    assert f"pip install {package}" in message
    assert "filesystem" in message and "inmemory" in message


def test_unknown_driver_lists_installed(builtins_only: None) -> None:
    with pytest.raises(DriverNotFoundError, match=r"installed: filesystem, inmemory\)$"):
        load_driver("nosuch")


def test_unknown_parameter_is_an_error(tmp_path: object) -> None:
    with pytest.raises(ParameterError, match=r"unknown parameter 'rootdir'.*rootdirectory"):
        load_driver("filesystem", rootdir=str(tmp_path))
    with pytest.raises(ParameterError, match="unknown parameter"):
        load_driver("inmemory", anything=1)


def test_string_parameters_are_converted(tmp_path: object) -> None:
    driver = load_driver("filesystem", rootdirectory=str(tmp_path), MaxThreads="50")
    assert isinstance(driver, FilesystemDriver)
    assert driver.params.maxthreads == 50


def test_malformed_parameter_is_an_error(tmp_path: object) -> None:
    with pytest.raises(ParameterError, match="'maxthreads' must be int"):
        load_driver("filesystem", rootdirectory=str(tmp_path), maxthreads="many")
    with pytest.raises(ParameterError, match="maxthreads"):
        load_driver("filesystem", rootdirectory=str(tmp_path), maxthreads=0)
    with pytest.raises(ParameterError, match="rootdirectory"):
        load_driver("filesystem", rootdirectory="")


@dataclasses.dataclass(frozen=True)
class _Kinds:
    flag: bool = False
    count: int = 0
    ratio: float = 0.0
    label: str = ""
    maybe: int | None = None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"flag": "true", "count": "7", "ratio": "0.5", "label": 3, "maybe": "4"},
         _Kinds(True, 7, 0.5, "3", 4)),
        ({"flag": "off", "maybe": None}, _Kinds(False)),
        ({"FLAG": "Yes"}, _Kinds(True)),
    ],
)  # fmt: skip
def test_parse_params_converts(raw: dict[str, object], expected: _Kinds) -> None:
    assert parse_params(_Kinds, raw, owner="test") == expected


@pytest.mark.parametrize("raw", [{"flag": "maybe"}, {"count": 1.5}, {"count": True}, {"label": []}])
def test_parse_params_rejects(raw: dict[str, object]) -> None:
    with pytest.raises(ParameterError):
        parse_params(_Kinds, raw, owner="test")


def test_describe_params() -> None:
    rows = describe_params(FilesystemDriver.Params)
    assert ("rootdirectory", "str", "'./registry-data'") in rows
    assert ("maxthreads", "int", "100") in rows


def test_two_packages_claiming_one_name(monkeypatch: pytest.MonkeyPatch) -> None:
    a = _ep("dup", "layerstore_core.drivers.inmemory:InMemoryDriver")
    b = _ep("dup", "layerstore_core.drivers.filesystem:FilesystemDriver")
    monkeypatch.setattr(discovery, "_dist_name", lambda ep: ep.value.split(".")[2])
    monkeypatch.setattr(discovery, "_entry_points", lambda: {"dup": [a, b]})
    with pytest.raises(DriverLoadError, match="claimed by several packages"):
        load_driver("dup")


def test_import_failure_names_the_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        discovery, "_entry_points", lambda: {"broken": [_ep("broken", "no_such_module:Driver")]}
    )
    with pytest.raises(
        DriverLoadError, match=r"'broken' \(no_such_module:Driver.*failed to import"
    ):
        load_driver("broken")


def test_loaded_object_must_be_a_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        discovery,
        "_entry_points",
        lambda: {"odd": [_ep("odd", "layerstore_core.errors:PathNotFoundError")]},
    )
    with pytest.raises(DriverLoadError, match="not a StorageDriver subclass"):
        load_driver("odd")


def test_driver_class_is_a_storage_driver() -> None:
    assert issubclass(discovery.driver_class("inmemory"), StorageDriver)
