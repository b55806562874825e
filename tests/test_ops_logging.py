"""The access log, ``log.formatter``/``log.fields``, held config warnings, TLS-on-HTTP lines."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import socket
import time
from pathlib import Path

import bcrypt
import httpx
import pytest

from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.server import Config
from layerstore_core.server.accesslog import redacted_uri
from layerstore_core.server.config import ConfigError, Htpasswd, parse_config
from layerstore_core.server.logsetup import JsonFormatter, TextFormatter
from layerstore_core.server.threaded import ThreadedServer
from tests.backends._servers import free_port
from tests.images import RegistryProcess, write_config

PASSWORD = "pa55-w0rd"


def _access(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [r.fields for r in caplog.records if r.name == "layerstore.access"]  # type: ignore[attr-defined]


def test_access_log_line_per_request_redacted(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "htpasswd").write_text(f"alice:{hashed}\n")
    cfg = Config(driver="inmemory", driver_params={}, secret="s",
                 htpasswd=Htpasswd("r", str(tmp_path / "htpasswd")))
    blob = b"layer bytes " * 100
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    auth = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    caplog.set_level(logging.INFO, logger="layerstore.access")
    with ThreadedServer(cfg, InMemoryDriver()) as srv, httpx.Client(
            base_url=srv.url, headers={"User-Agent": "ops-test/1.0"}) as c:
        assert c.get("/v2/").status_code == 401
        start = c.post("/v2/lib/app/blobs/uploads/", headers={"Authorization": auth})
        location = start.headers["Location"]
        assert "_state=" in location
        patch = c.patch(location, content=blob, headers={"Authorization": auth})
        done = c.put(f"{patch.headers['Location']}&digest={digest}",
                     headers={"Authorization": auth})
        assert done.status_code == 201, done.text
        token = location.split("_state=", 1)[1]
    lines = _access(caplog)
    assert [(f["http.request.method"], f["http.request.route"], f["http.response.status"])
            for f in lines] == [("GET", "base", 401), ("POST", "blob_upload", 202),
                                ("PATCH", "blob_upload_chunk", 202),
                                ("PUT", "blob_upload_chunk", 201)]
    assert "auth.user.name" not in lines[0]
    assert all(f["auth.user.name"] == "alice" for f in lines[1:])
    assert all(f["vars.name"] == "lib/app" for f in lines[1:])
    assert all(f["http.request.useragent"] == "ops-test/1.0" for f in lines)
    assert lines[2]["http.request.read"] == len(blob)
    assert int(str(lines[0]["http.response.written"])) > 0
    assert len({f["http.request.id"] for f in lines}) == 4
    assert "_state=REDACTED" in str(lines[2]["http.request.uri"])
    assert "digest=sha256:" in str(lines[3]["http.request.uri"])
    text = caplog.text + json.dumps(lines)
    assert token[:20] not in text and PASSWORD not in text and "Basic " not in text


def test_access_log_path_is_as_sent_under_a_prefix(caplog: pytest.LogCaptureFixture) -> None:
    """``http.prefix``: the URI as the client sent it; route and repository below the prefix."""
    cfg = parse_config({"storage": {"inmemory": {}}, "http": {"secret": "s", "prefix": "/pre/"}})
    caplog.set_level(logging.INFO, logger="layerstore.access")
    with ThreadedServer(cfg, InMemoryDriver()) as srv, httpx.Client(base_url=srv.url) as c:
        assert c.get("/pre/v2/").status_code == 200
        assert c.get("/pre/v2/lib/app/tags/list?n=1").status_code == 404
        assert c.get("/v2/").status_code == 404  # not under the prefix
    lines = _access(caplog)
    assert [(f["http.request.uri"], f["http.request.route"], f.get("vars.name")) for f in lines] \
        == [("/pre/v2/", "base", None), ("/pre/v2/lib/app/tags/list?n=1", "tags", "lib/app"),
            ("/v2/", "unknown", None)]
    ids = [str(f["http.request.id"]) for f in lines]
    assert len(set(ids)) == 3
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", i)
               for i in ids), ids  # UUID-shaped, as Distribution's


def test_access_log_disabled(caplog: pytest.LogCaptureFixture) -> None:
    cfg = parse_config({"storage": {"inmemory": {}}, "log": {"accesslog": {"disabled": True}}})
    assert cfg.accesslog_disabled
    caplog.set_level(logging.INFO, logger="layerstore.access")
    with ThreadedServer(cfg, InMemoryDriver()) as srv:
        assert httpx.get(srv.url + "/v2/").status_code == 200
    assert _access(caplog) == []


def test_redacted_uri() -> None:
    assert redacted_uri("/v2/a/blobs/uploads/1", "_state=abc.def&digest=sha256:00") == \
        "/v2/a/blobs/uploads/1?_state=REDACTED&digest=sha256:00"
    assert redacted_uri("/v2/", "") == "/v2/"


def test_formatters_carry_fields() -> None:
    record = logging.LogRecord("layerstore.access", logging.INFO, "x", 1, "GET %s", ("base",),
                               None)
    record.fields = {"http.response.status": 200, "http.request.useragent": "a b"}
    text = TextFormatter({"service": "reg"}).format(record)
    assert text.endswith('GET base service=reg http.response.status=200 '
                         'http.request.useragent="a b"'), text
    doc = json.loads(JsonFormatter({"service": "reg"}).format(record))
    assert doc["msg"] == "GET base" and doc["level"] == "info" and doc["service"] == "reg"
    assert doc["http.response.status"] == 200 and "time" in doc


def test_log_config_keys() -> None:
    cfg = parse_config({"log": {"formatter": "json", "fields": {"service": "registry"}},
                        "loglevel": "debug"})
    assert (cfg.log_formatter, dict(cfg.log_fields), cfg.log_level) == \
        ("json", {"service": "registry"}, "DEBUG")
    for bad in ({"formatter": "logstash"}, {"formatter": "xml"}, {"fields": ["a"]},
                {"accesslog": {"disabled": "maybe"}}, {"accesslog": {"other": 1}}):
        with pytest.raises(ConfigError):
            parse_config({"log": bad})


def test_serve_json_logs_held_warnings_and_tls_probe(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path / "config.yml", "filesystem",
                          {"rootdirectory": str(tmp_path / "store")}, port, extra={
                              "log": {"level": "info", "formatter": "json",
                                      "fields": {"service": "registry"}},
                              "storage": {"tag": {"concurrencylimit": 8}},
                          })
    log_path = tmp_path / "server.log"
    with RegistryProcess.layerstore(config, port, log_path) as proc:
        assert httpx.get(proc.url + "/v2/", headers={"User-Agent": "probe"}).status_code == 200
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64)
            sock.recv(4096)
        deadline = time.monotonic() + 30
        while "TLS" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    assert all(d["service"] == "registry" and "time" in d for d in lines), lines
    warning = next(d for d in lines if "storage.tag" in d["msg"])
    assert warning["level"] == "warning" and lines.index(warning) == 0  # held, then written
    access = [d for d in lines if d["logger"] == "layerstore.access"]
    assert any(d["http.request.useragent"] == "probe" and d["http.response.status"] == 200
               for d in access), access
    assert any("trying TLS on this plain-HTTP address" in d["msg"] for d in lines), lines
