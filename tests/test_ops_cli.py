"""The CLI as an operator meets it (issue 14): --version, drivers, head, serve --addr/--root."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx

from tests.backends._servers import free_port
from tests.images import RegistryProcess


def _exe() -> list[str]:
    exe = shutil.which("layerstore")
    return [exe] if exe else ["python3", "-m", "layerstore_core.cli"]


def test_version_and_clean_drivers_text() -> None:
    version = subprocess.run([*_exe(), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("layerstore 0.")
    drivers = subprocess.run([*_exe(), "drivers"], capture_output=True, text=True, timeout=60)
    assert drivers.returncode == 0, drivers.stderr
    assert "filesystem: Files under rootdirectory;" in drivers.stdout
    assert "``" not in drivers.stdout and "default (required)" not in drivers.stdout
    assert "  required" in drivers.stdout  # the s3 bucket, the gcs bucket, the azure container


def test_drivers_into_a_closed_pipe_is_quiet() -> None:
    shell = f"{' '.join(_exe())} drivers | head -1"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.count("\n") == 1
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_serve_addr_and_root_flags_and_startup_line(tmp_path: Path) -> None:
    port = free_port()
    root = tmp_path / "flag-root"
    argv = [*_exe(), "serve", "--addr", f"127.0.0.1:{port}", "--root", str(root)]
    env = os.environ | {"REGISTRY_HTTP_ADDR": "127.0.0.1:1"}  # the flag wins over the variable
    with RegistryProcess(argv, port, tmp_path / "server.log", env, cwd=tmp_path) as srv:
        digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        r = httpx.post(f"{srv.url}/v2/flag/blobs/uploads/", params={"digest": digest})
        assert r.status_code == 201, r.text
    assert (root / "docker" / "registry" / "v2" / "repositories" / "flag").is_dir()
    log = (tmp_path / "server.log").read_text()
    assert f"filesystem storage ({root}) on http://127.0.0.1:{port}" in log, log
