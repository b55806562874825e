"""Config fidelity (issue 14): Distribution keys honoured or refused, REGISTRY_ variables."""

from __future__ import annotations

import logging
import os
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.server.config import ConfigError, parse_config
from layerstore_core.server.threaded import ThreadedServer
from tests.backends._servers import free_port
from tests.images import RegistryProcess, write_config


def test_unknown_registry_variables_warn(caplog: pytest.LogCaptureFixture) -> None:
    env = {"REGISTRY_PORT": "tcp://10.0.0.7:5000", "REGISTRY_PORT_5000_TCP_ADDR": "10.0.0.7",
           "REGISTRY_SERVICE_HOST": "10.0.0.7", "REGISTRY_FOO_BAR": "1",
           "REGISTRY_HTTP_NOPE": "1", "REGISTRY_CONFIGURATION_PATH": "/etc/x.yml",
           "REGISTRY_HTTP_ADDR": "127.0.0.1:5999"}
    with caplog.at_level(logging.WARNING):
        cfg = parse_config({"http": {"secret": "s"}}, env)
    assert cfg.port == 5999 and cfg.secret == "s"
    text = caplog.text
    for name in ("REGISTRY_PORT ", "REGISTRY_SERVICE_HOST", "REGISTRY_FOO_BAR",
                 "REGISTRY_HTTP_NOPE"):
        assert name in text, text
    assert "REGISTRY_CONFIGURATION_PATH" not in text
    with pytest.raises(ConfigError, match="http.nope"):  # in the file it is still an error
        parse_config({"http": {"nope": 1}}, {})


@pytest.mark.parametrize("doc", [
    {"middleware": {"storage": [{"name": "cloudfront"}]}},
    {"http": {"tls": {"letsencrypt": {"cachefile": "/x"}}}},
])
def test_security_keys_we_lack_are_refused(doc: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="not supported"):
        parse_config(doc, {})


def test_tuning_keys_only_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        parse_config({"storage": {"inmemory": {}, "tag": {"concurrencylimit": 8}},
                      "policy": {"repository": {}}, "catalog": {"maxentries": 10}}, {})
    assert "storage.tag" in caplog.text and "key policy is accepted" in caplog.text


def test_http_headers_on_every_response() -> None:
    cfg = parse_config({"storage": {"inmemory": {}}, "http": {"secret": "s", "headers": {
        "X-Content-Type-Options": ["nosniff"], "X-Multi": ["a", "b"]}}}, {})
    with ThreadedServer(cfg, InMemoryDriver()) as srv:
        for path in ("/", "/v2/", "/v2/none/manifests/x"):
            r = httpx.get(srv.url + path)
            assert r.headers["x-content-type-options"] == "nosniff", path
            assert r.headers.get_list("x-multi") == ["a", "b"], path
    with pytest.raises(ConfigError, match="http.headers"):
        parse_config({"http": {"headers": ["X-A"]}}, {})


def test_tls_policy_config_errors() -> None:
    tls = {"certificate": "/c", "key": "/k"}
    cfg = parse_config({"http": {"tls": {**tls, "minimumtls": "tls1.3", "clientcas": ["/ca"],
                                         "ciphersuites": ["TLS_AES_128_GCM_SHA256"]}}}, {})
    assert (cfg.tls_minimum, cfg.tls_clientcas) == ("tls1.3", ("/ca",))
    for bad in ({**tls, "minimumtls": "ssl3"}, {**tls, "ciphersuites": ["TLS_NOPE"]},
                {"clientcas": ["/ca"]}):
        with pytest.raises(ConfigError, match="http.tls"):
            parse_config({"http": {"tls": bad}}, {})


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _pki(d: Path) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ca",
             "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"))
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(d / "server.key"), "-out", str(d / "server.pem"))
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=client",
             "-keyout", str(d / "client.key"), "-out", str(d / "client.csr"))
    _openssl("x509", "-req", "-in", str(d / "client.csr"), "-CA", str(d / "ca.pem"),
             "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "1",
             "-out", str(d / "client.pem"))


def _client(d: Path, cert: bool, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(d / "server.pem"))
    if cert:
        ctx.load_cert_chain(str(d / "client.pem"), str(d / "client.key"))
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def test_mutual_tls_and_minimum_version(tmp_path: Path) -> None:
    _pki(tmp_path)
    port = free_port()
    config = write_config(tmp_path / "config.yml", "filesystem",
                          {"rootdirectory": str(tmp_path / "root")}, port,
                          {"http": {"tls": {"certificate": str(tmp_path / "server.pem"),
                                            "key": str(tmp_path / "server.key"),
                                            "clientcas": [str(tmp_path / "ca.pem")],
                                            "minimumtls": "tls1.3"}}})
    url = f"https://127.0.0.1:{port}/v2/"
    proc = RegistryProcess.layerstore(config, port, tmp_path / "server.log",
                                      env=os.environ | {"REGISTRY_SERVICE_HOST": "10.0.0.1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(url, verify=_client(tmp_path, cert=True), timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.proc.poll() is None, \
                    (tmp_path / "server.log").read_text()
                time.sleep(0.2)
        assert r.status_code == 200
        with pytest.raises(httpx.TransportError):  # no client certificate: refused
            httpx.get(url, verify=_client(tmp_path, cert=False), timeout=5).raise_for_status()
        with pytest.raises(httpx.TransportError):  # TLS 1.2 is under the minimum
            httpx.get(url, verify=_client(tmp_path, True, ssl.TLSVersion.TLSv1_2), timeout=5)
    finally:
        proc.stop()
    assert "REGISTRY_SERVICE_HOST" in (tmp_path / "server.log").read_text()


def test_configuration_path_variable(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path / "config.yml", "filesystem",
                          {"rootdirectory": str(tmp_path / "root")}, port)
    exe = str(Path(os.environ.get("VIRTUAL_ENV", "")) / "bin" / "layerstore")
    argv = [exe] if os.path.exists(exe) else ["python3", "-m", "layerstore_core.cli"]
    env = os.environ | {"REGISTRY_CONFIGURATION_PATH": str(config), "REGISTRY_FOO_BAR": "1"}
    with RegistryProcess([*argv, "serve"], port, tmp_path / "server.log", env) as srv:
        assert httpx.get(srv.url + "/v2/").status_code == 200
