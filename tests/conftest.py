"""Test-wide fixtures: every backend module in tests/backends/ is a plugin.

Each module in ``tests/backends/`` sets ``BACKENDS`` (backend ids, e.g. ``["s3"]``) and defines,
for each id, a function-scoped fixture ``backend_<id with - as _>`` returning a fresh, isolated
:class:`layerstore_core.testing.Backend` (its emulator, if any, started by a session fixture that
fails loudly when it cannot start). ``any_backend`` is parametrized over all of them, so tests
that take it (the blob service tests, the HTTP tests) run on every backend; ``shared_backend``
leaves out those a module lists in ``PROCESS_LOCAL`` (they cannot be opened by a subprocess).
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
#: Backends whose data lives in the test process (``Backend.cross_process`` is False).
PROCESS_LOCAL: set[str] = set()
for _name in _MODULES:
    _module = importlib.import_module(f"tests.backends.{_name}")
    ALL_BACKENDS.extend(_module.BACKENDS)
    PROCESS_LOCAL.update(getattr(_module, "PROCESS_LOCAL", ()))
#: Backends a server subprocess or a child process can open too.
SHARED_BACKENDS = [b for b in ALL_BACKENDS if b not in PROCESS_LOCAL]


def backend_fixture_name(backend_id: str) -> str:
    return "backend_" + backend_id.replace("-", "_")


@pytest.fixture(params=ALL_BACKENDS)
def any_backend(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.getfixturevalue(backend_fixture_name(request.param))
    return backend


@pytest.fixture(params=SHARED_BACKENDS)
def shared_backend(request: pytest.FixtureRequest) -> Backend:
    """Every backend that another process (a ``layerstore serve`` subprocess) can open."""
    backend: Backend = request.getfixturevalue(backend_fixture_name(request.param))
    assert backend.cross_process, f"{backend.id} must be listed in its module's PROCESS_LOCAL"
    return backend
