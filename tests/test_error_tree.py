"""One error root, stdlib doubles kept, every exported error raised, HTTP answers from the class."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path

import pytest

import layerstore_core
from layerstore_core import LayerstoreError, RegistryError
from layerstore_core.server.config import ConfigError
from layerstore_core.server.errors import from_exception
from layerstore_core.server.http import error_response

REPO = Path(__file__).resolve().parents[1]
SOURCES = [REPO / "layerstore_core", *sorted(REPO.glob("drivers_*/layerstore_*"))]
EXPORTED = sorted(
    (obj for name in layerstore_core.__all__
     if isinstance(obj := getattr(layerstore_core, name), type)
     and issubclass(obj, BaseException)),
    key=lambda kind: kind.__name__,
)
DOUBLES = {
    "ParameterError": ValueError, "DriverNotFoundError": LookupError,
    "DriverLoadError": ImportError, "PathNotFoundError": FileNotFoundError,
    "InvalidPathError": ValueError, "InvalidOffsetError": ValueError,
    "WriterClosedError": ValueError, "BlobUnknownError": LookupError,
    "ManifestInvalidError": ValueError, "RangeInvalidError": ValueError,
}


def _constructed_names() -> set[str]:
    """Names called anywhere in the shipped source: ``X(...)``, ``mod.X(...)`` or ``raise X``."""
    names: set[str] = set()
    for root in SOURCES:
        for path in root.rglob("*.py"):
            if "testing" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                target = node.func if isinstance(node, ast.Call) else (
                    node.exc if isinstance(node, ast.Raise) else None)
                if isinstance(target, ast.Name):
                    names.add(target.id)
                elif isinstance(target, ast.Attribute):
                    names.add(target.attr)
    return names


def test_every_error_has_the_one_root() -> None:
    assert len(EXPORTED) > 20
    for kind in [*EXPORTED, ConfigError]:
        assert issubclass(kind, LayerstoreError), kind
    assert issubclass(ConfigError, ValueError)
    for name, double in DOUBLES.items():
        assert issubclass(getattr(layerstore_core, name), double), name


def test_every_exported_error_is_raised_somewhere() -> None:
    """The root is only caught; every other exported class must be constructed in the source."""
    called = _constructed_names()
    never = [k.__name__ for k in EXPORTED if k is not LayerstoreError and k.__name__ not in called]
    assert never == [], f"exported but never raised: {never}"


def test_error_tree_is_drawn_in_the_errors_module() -> None:
    doc = layerstore_core.errors.__doc__ or ""
    for kind in ("LayerstoreError", "StorageDriverError", "RegistryError", "ParameterError",
                 "DriverNotFoundError", "DriverLoadError", "ConfigError"):
        assert kind in doc
    registry_doc = layerstore_core.registry.errors.__doc__ or ""
    for kind in EXPORTED:
        if issubclass(kind, RegistryError) and kind is not RegistryError:
            assert kind.__name__ in registry_doc, kind


@pytest.mark.parametrize(
    "kind", [k for k in EXPORTED if issubclass(k, RegistryError)], ids=lambda k: k.__name__
)
def test_http_answer_comes_from_the_class(kind: type[RegistryError]) -> None:
    err = kind("why", detail={"x": 1}, headers={"X-Extra": "1"})
    assert from_exception(err) is err
    resp = error_response(err)
    assert resp.status == kind.status
    assert ("X-Extra", "1") in resp.headers
    assert isinstance(resp.body, bytes)
    assert json.loads(resp.body) == {"errors": [{"code": kind.code, "message": "why",
                                                 "detail": {"x": 1}}]}


def test_anything_else_is_a_500_unknown() -> None:
    err = from_exception(KeyError("boom"))
    assert (type(err), err.code, err.status) == (RegistryError, "UNKNOWN", 500)
    assert "boom" not in err.message


def test_server_has_no_string_codes() -> None:
    """No ``HTTPError("…")``-style code strings: refusals are typed classes only."""
    server = REPO / "layerstore_core" / "server"
    for path in server.glob("*.py"):
        text = path.read_text()
        assert "HTTPError" not in text, path
        for kind in EXPORTED:
            if issubclass(kind, RegistryError) and kind.code != "UNKNOWN":
                assert f'"{kind.code}"' not in text, (path, kind.code)


def test_body_too_large_is_the_type_given() -> None:
    from layerstore_core import ManifestTooLargeError
    from layerstore_core.server.http import Request

    messages = [{"type": "http.request", "body": b"x" * 10, "more_body": False}]

    async def receive() -> dict[str, object]:
        return messages.pop(0)

    scope = {"method": "PUT", "path": "/", "headers": []}
    req = Request(scope, receive)  # type: ignore[arg-type]  # ASGI's Message is a MutableMapping
    with pytest.raises(ManifestTooLargeError) as caught:
        asyncio.run(req.read(5, ManifestTooLargeError))
    assert caught.value.status == 413 and caught.value.code == "MANIFEST_INVALID"
