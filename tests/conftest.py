"""Test-wide fixtures: every backend module in tests/backends/ is a plugin.

Each module in ``tests/backends/`` sets ``BACKENDS`` (backend ids, e.g. ``["s3"]``) and defines,
for each id, a function-scoped fixture ``backend_<id with - as _>`` returning a fresh, isolated
:class:`layerstore_core.testing.Backend` (its emulator, if any, started by a session fixture that
fails loudly when it cannot start). ``any_backend`` is parametrized over all of them, so tests
that take it (the blob service tests, the HTTP tests) run on every backend.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

from layerstore_core.testing import Backend

_BACKEND_DIR = Path(__file__).parent / "backends"
_MODULES = sorted(
    m.name for m in pkgutil.iter_modules([str(_BACKEND_DIR)]) if not m.name.startswith("_")
)
pytest.register_assert_rewrite("tests.backends")
pytest_plugins = [f"tests.backends.{name}" for name in _MODULES]

ALL_BACKENDS: list[str] = []
for _name in _MODULES:
    ALL_BACKENDS.extend(importlib.import_module(f"tests.backends.{_name}").BACKENDS)


def backend_fixture_name(backend_id: str) -> str:
    return "backend_" + backend_id.replace("-", "_")


@pytest.fixture(params=ALL_BACKENDS)
def any_backend(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.getfixturevalue(backend_fixture_name(request.param))
    return backend
