import inspect

import pytest

import layerstore_core
import layerstore_core.testing


@pytest.mark.parametrize("module", [layerstore_core, layerstore_core.testing])
def test_all_is_sorted_and_complete(module: object) -> None:
    exported = list(module.__all__)  # type: ignore[attr-defined]
    assert exported == sorted(exported)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert set(exported) == public


def test_core_public_names() -> None:
    assert {"StorageDriver", "FileWriter", "FileInfo", "load_driver", "available_drivers"} <= set(
        layerstore_core.__all__
    )
    for name in layerstore_core.__all__:
        assert getattr(layerstore_core, name).__doc__, f"{name} has no docstring"


def test_error_tree_has_one_root() -> None:
    from layerstore_core import (
        InvalidOffsetError,
        InvalidPathError,
        PathNotFoundError,
        StorageDriverError,
        UnsupportedMethodError,
        WriterClosedError,
    )

    for kind in (
        InvalidOffsetError,
        InvalidPathError,
        PathNotFoundError,
        UnsupportedMethodError,
        WriterClosedError,
    ):
        assert issubclass(kind, StorageDriverError)
    assert issubclass(PathNotFoundError, FileNotFoundError)
    err = PathNotFoundError(path="/a", driver="x")
    assert str(err) == "x: /a: Nothing exists at the path."
