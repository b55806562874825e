"""Packaging (issue 14): the wheelhouse gives a per-cloud install on a machine with no layerstore.

``scripts/wheelhouse`` builds all four wheels; a fresh venv then installs ``layerstore-s3`` with
``--find-links`` (its ``layerstore-core`` dependency comes from the wheelhouse, boto3 from the
index) and ``layerstore drivers`` lists s3. Each wheel carries its license and metadata.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*argv: str | Path, timeout: float = 600) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_wheelhouse_installs_one_cloud_in_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run(ROOT / "scripts" / "wheelhouse", dist)
    wheels = sorted(p.name.split("-")[0] for p in dist.glob("*.whl"))
    assert wheels == ["layerstore_azure", "layerstore_core", "layerstore_gcs", "layerstore_s3"]
    for wheel in dist.glob("*.whl"):
        with zipfile.ZipFile(wheel) as z:
            meta = next(z.read(n).decode() for n in z.namelist() if n.endswith("/METADATA"))
            assert "License-Expression: Apache-2.0" in meta, wheel
            assert any(n.endswith("licenses/LICENSE") for n in z.namelist()), wheel
            assert "Description-Content-Type: text/markdown" in meta, wheel
            if not wheel.name.startswith("layerstore_core"):
                assert "Requires-Dist: layerstore-core<0.2,>=0.1" in meta, wheel

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-compile",
         "--disable-pip-version-check", "--find-links", dist,
         "layerstore-s3")
    drivers = _run(venv / "bin" / "layerstore", "drivers")
    assert "s3: " in drivers and "``" not in drivers and "(required)" not in drivers
    assert "gcs: not installed; install it with `pip install layerstore-gcs`" in drivers
    assert "scripts/wheelhouse" in drivers
    assert _run(venv / "bin" / "layerstore", "--version").strip() == "layerstore 0.1.0"
