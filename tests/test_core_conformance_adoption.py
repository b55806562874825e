"""Every driver's conformance module adopts every part of the suite, and teardown catches litter."""

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from layerstore_core.testing import SUITE_PARTS, ConformanceSuite

TESTS = Path(__file__).parent
MODULES = sorted(p.stem for p in TESTS.glob("test_conformance_*.py"))


def test_suite_combines_every_part() -> None:
    assert set(SUITE_PARTS) <= set(ConformanceSuite.__mro__)
    names = {c.__name__ for c in SUITE_PARTS}
    assert names == {
        "ContentCases", "ReaderCases", "WriterCases", "ListCases",
        "MoveDeleteCases", "WalkCases", "RedirectCases", "ConcurrencyCases", "ConditionalCases",
        "ResumeCases", "OneWriterCases",
    }  # fmt: skip


def test_builtin_drivers_adopt_the_suite() -> None:
    assert {"test_conformance_filesystem", "test_conformance_inmemory"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_module_adopts_every_part(module: str) -> None:
    mod = importlib.import_module(f"tests.{module}")
    classes = [
        obj for obj in vars(mod).values()
        if isinstance(obj, type) and obj.__name__.startswith("Test")
    ]  # fmt: skip
    assert classes, f"{module} defines no test class"
    for part in SUITE_PARTS:
        adopters = [c for c in classes if issubclass(c, part)]
        assert adopters, f"{module}: no test class adopts {part.__name__}"
        for cls in adopters:
            assert "conformance_backend" in vars(cls), f"{cls.__name__} lacks conformance_backend"


_LEAKY = """
import pytest
from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.testing import Backend, MoveDeleteCases

class LeakyDriver(InMemoryDriver):
    def _delete(self, path):
        pass  # forgets to delete

class TestLeaky(MoveDeleteCases):
    @pytest.fixture
    def conformance_backend(self):
        driver = LeakyDriver()
        return Backend("leaky", "inmemory", {}, cross_process=False, factory=lambda: driver)
"""


def test_teardown_fails_on_leftovers(tmp_path: Path) -> None:
    test_file = tmp_path / "test_leaky.py"
    test_file.write_text(textwrap.dedent(_LEAKY))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file),
         "-k", "test_move_overwrite", "--rootdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != 0, done.stdout
    assert "left 1 item(s) behind" in done.stdout, done.stdout
