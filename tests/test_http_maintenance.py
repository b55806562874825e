"""Upload purging inside the server, and ``layerstore serve`` with no config at all."""

from __future__ import annotations

import hashlib
import os
import ssl
import subprocess
import time
from pathlib import Path

import httpx

from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.server import Config
from layerstore_core.server.config import PurgeConfig
from layerstore_core.server.threaded import ThreadedServer
from tests.backends._servers import free_port
from tests.images import RegistryProcess, write_config


def test_server_purges_stale_uploads_periodically() -> None:
    cfg = Config(driver="inmemory", driver_params={}, secret="s",
                 purge=PurgeConfig(enabled=True, age=0.0, interval=0.3))
    with ThreadedServer(cfg, InMemoryDriver()) as srv, httpx.Client(base_url=srv.url) as c:
        location = c.post("/v2/p/blobs/uploads/").headers["Location"]
        deadline = time.monotonic() + 15
        while c.get(location).status_code == 204:
            assert time.monotonic() < deadline, "upload was never purged"
            time.sleep(0.2)
        assert c.get(location).json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


def test_serve_without_config_uses_defaults(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, REGISTRY_HTTP_ADDR=f"127.0.0.1:{port}")
    env.pop("REGISTRY_CONFIGURATION_PATH", None)
    argv = ["python3", "-m", "layerstore_core.cli", "serve"]
    empty = "sha256:" + hashlib.sha256(b"").hexdigest()
    with RegistryProcess(argv, port, tmp_path / "server.log", env, cwd=tmp_path) as srv:
        r = httpx.post(f"{srv.url}/v2/first/blobs/uploads/", params={"digest": empty})
        assert r.status_code == 201, r.text
    assert (tmp_path / "registry-data" / "docker" / "registry" / "v2" / "blobs").is_dir()
    log = (tmp_path / "server.log").read_text()
    assert "http.secret is not set" in log and "will not" in log


def test_serve_with_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    config = write_config(tmp_path / "config.yml", "filesystem",
                          {"rootdirectory": str(tmp_path / "root")}, port,
                          {"http": {"tls": {"certificate": str(cert), "key": str(key)}}})
    proc = RegistryProcess.layerstore(config, port, tmp_path / "server.log")
    try:
        deadline = time.monotonic() + 30
        trust = ssl.create_default_context(cafile=str(cert))
        while True:
            try:
                r = httpx.get(f"https://127.0.0.1:{port}/v2/", verify=trust, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.proc.poll() is None, \
                    (tmp_path / "server.log").read_text()
                time.sleep(0.2)
        assert r.status_code == 200
    finally:
        proc.stop()
