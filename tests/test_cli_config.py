"""Config parsing (Distribution keys, REGISTRY_ overrides, errors naming the key) and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from layerstore_core import cli
from layerstore_core.server.config import (
    ConfigError,
    Limits,
    load_config,
    parse_config,
    parse_duration,
)
from layerstore_core.server.tokens import InvalidTokenError, TokenSigner, UploadState

DISTRIBUTION_CONFIG = """
version: 0.1
log:
  level: debug
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
  redirect:
    disable: true
  maintenance:
    uploadpurging:
      enabled: true
      age: 72h
      interval: 30m
      dryrun: false
http:
  addr: :5001
  secret: topsecret
  headers:
    X-Content-Type-Options: [nosniff]
  tls:
    certificate: /c.pem
    key: /k.pem
auth:
  htpasswd:
    realm: basic-realm
    path: /etc/registry/htpasswd
health:
  storagedriver:
    enabled: true
"""


def test_defaults() -> None:
    c = parse_config(None, {})
    assert (c.driver, dict(c.driver_params)) == ("filesystem", {"rootdirectory": "./registry-data"})
    assert (c.host, c.port) == ("127.0.0.1", 5000)
    assert c.secret is None and not c.delete_enabled and not c.redirect_disabled
    assert c.purge.enabled and c.purge.age == 168 * 3600


def test_distribution_config_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(DISTRIBUTION_CONFIG)
    c = load_config(path, {})
    assert c.driver == "filesystem" and c.driver_params == {"rootdirectory": "/var/lib/registry"}
    assert c.delete_enabled and c.redirect_disabled
    assert (c.purge.age, c.purge.interval) == (72 * 3600, 1800)
    assert (c.host, c.port, c.secret) == ("0.0.0.0", 5001, "topsecret")
    assert (c.tls_certificate, c.tls_key) == ("/c.pem", "/k.pem")
    assert c.log_level == "DEBUG"
    assert c.htpasswd is not None and c.htpasswd.path == "/etc/registry/htpasswd"


def test_env_overrides() -> None:
    env = {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/data",
           "REGISTRY_HTTP_ADDR": "127.0.0.1:6000", "REGISTRY_STORAGE_DELETE_ENABLED": "true",
           "REGISTRY_LOG_LEVEL": "warn", "OTHER": "x"}
    c = parse_config({"storage": {"filesystem": {"rootdirectory": "/x"}}}, env)
    assert c.driver_params == {"rootdirectory": "/data"} and c.port == 6000
    assert c.delete_enabled and c.log_level == "WARNING"
    s3 = parse_config({"storage": {"filesystem": {}}},
                      {"REGISTRY_STORAGE": "s3", "REGISTRY_STORAGE_S3_BUCKET": "b"})
    assert (s3.driver, dict(s3.driver_params)) == ("s3", {"bucket": "b"})
    only_env = parse_config(None, {"REGISTRY_STORAGE_S3_BUCKET": "b"})
    assert only_env.driver == "s3"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"storage": {"filesystem": {}, "s3": {}}}, "storage"),
        ({"htp": {}}, "htp"),
        ({"http": {"adr": ":5000"}}, "http.adr"),
        ({"http": {"addr": "nowhere"}}, "http.addr"),
        ({"http": {"addr": "host:99999"}}, "http.addr"),
        ({"http": {"tls": {"certificate": "/c"}}}, "http.tls"),
        ({"storage": {"delete": {"enabled": "maybe"}}}, "storage.delete.enabled"),
        ({"storage": {"maintenance": {"uploadpurging": {"age": "3 days"}}}},
         "storage.maintenance.uploadpurging.age"),
        ({"storage": {"maintenance": {"uploadpurging": {"every": "1h"}}}},
         "storage.maintenance.uploadpurging.every"),
        ({"log": {"level": "loud"}}, "log.level"),
        ({"auth": {"htpasswd": {"realm": "r"}}}, "auth.htpasswd.path"),
        ({"auth": {"token": {}}}, "auth.token"),
        ({"storage": "filesystem"}, "storage"),
        ({"http": {"maxheaderbytes": "²"}}, "http.maxheaderbytes"),
        ({"http": {"maxconnections": 0}}, "http.maxconnections"),
        ({"http": {"readheadertimeout": "0s"}}, "http.readheadertimeout"),
        ({"http": {"bodyidletimeout": "soon"}}, "http.bodyidletimeout"),
        ({"http": {"draintimeout": "-"}}, "http.draintimeout"),
        ({"http": {"addr": "host:²"}}, "http.addr"),
    ],
)
def test_errors_name_the_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(raw, {})


def test_connection_limits_and_drain() -> None:
    config = parse_config({"http": {"maxheaderbytes": 1024, "maxconnections": "10",
                                    "readheadertimeout": "5s", "bodyidletimeout": "2m",
                                    "idletimeout": "1s", "draintimeout": "30s"}}, {})
    assert config.limits == Limits(max_header_bytes=1024, max_connections=10,
                                   header_timeout=5.0, body_timeout=120.0,
                                   keepalive_timeout=1.0)
    assert config.drain_timeout == 30.0
    assert parse_config(None, {}).limits == Limits()
    env = parse_config(None, {"REGISTRY_HTTP_MAXCONNECTIONS": "7"})
    assert env.limits.max_connections == 7


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("storage: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, {})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yml", {})


def test_durations() -> None:
    assert parse_duration("1h30m", "k") == 5400
    assert parse_duration("1.5s", "k") == 1.5
    assert parse_duration("250ms", "k") == 0.25
    for bad in ("h", "10", "10 h", True, [1]):  # a bare number (other than 0) is not a duration
        with pytest.raises(ConfigError):
            parse_duration(bad, "k")


def test_state_tokens() -> None:
    signer = TokenSigner("secret")
    state = UploadState(name="a/b", id="u1", offset=42, started_at="2026-01-01T00:00:00Z")
    token = signer.sign(state)
    assert signer.verify(token, name="a/b", upload_id="u1") == state
    for bad_name, bad_id in (("a/c", "u1"), ("a/b", "u2")):
        with pytest.raises(InvalidTokenError):
            signer.verify(token, name=bad_name, upload_id=bad_id)
    with pytest.raises(InvalidTokenError):
        TokenSigner("other").verify(token, name="a/b", upload_id="u1")
    body, mac = token.split(".")
    with pytest.raises(InvalidTokenError):
        signer.verify(body[:-2] + "xx." + mac, name="a/b", upload_id="u1")


def test_state_tokens_carry_the_hash_state() -> None:
    """The hash state rides signed: read back as given, never accepted altered or oversized."""
    import base64
    import json

    from layerstore_core.registry.hashstate import ResumableSHA256, new_sha256

    hasher = new_sha256()
    hasher.update(b"x" * 1000)
    state = UploadState(name="a/b", id="u1", offset=1000, started_at="2026-01-01T00:00:00Z",
                        hash_state=hasher.marshal())
    signer = TokenSigner("secret")
    back = signer.verify(signer.sign(state), name="a/b", upload_id="u1")
    assert back == state and ResumableSHA256.unmarshal(back.hash_state).length == 1000
    assert "hash_state" not in repr(back)
    raw = json.loads(base64.urlsafe_b64decode(signer.sign(state).split(".")[0] + "=="))
    raw["hash_state"] = base64.urlsafe_b64encode(b"s" * 200).decode()
    payload = json.dumps(raw, separators=(",", ":"), sort_keys=True).encode()
    mac = signer._mac(payload)  # a correctly signed token whose state is too long
    token = (base64.urlsafe_b64encode(payload).rstrip(b"=").decode() + "."
             + base64.urlsafe_b64encode(mac).rstrip(b"=").decode())
    with pytest.raises(InvalidTokenError):
        signer.verify(token, name="a/b", upload_id="u1")


def test_drivers_command_lists_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["drivers"]) == 0
    out = capsys.readouterr().out
    assert "filesystem:" in out and "rootdirectory" in out
    assert "inmemory:" in out


def test_serve_reports_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "config.yml"
    bad.write_text("http:\n  adr: x\n")
    run = subprocess.run([sys.executable, "-m", "layerstore_core.cli", "serve", "--config",
                          str(bad)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "http.adr" in run.stderr and "Traceback" not in run.stderr
    bad.write_text("storage:\n  nosuchdriver: {}\n")
    run = subprocess.run([sys.executable, "-m", "layerstore_core.cli", "serve", "--config",
                          str(bad)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "nosuchdriver" in run.stderr and "Traceback" not in run.stderr
    bad.write_text("storage:\n  filesystem:\n    rootdir: /x\n")
    run = subprocess.run([sys.executable, "-m", "layerstore_core.cli", "serve", "--config",
                          str(bad)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "rootdir" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("auth:\n  htpasswd: {realm: r, path: MISSING}\n", "auth.htpasswd.path"),
        ("http:\n  addr: 127.0.0.1:5999\n  tls: {certificate: MISSING, key: MISSING}\n",
         "http.tls"),
    ],
)
def test_serve_reports_unreadable_files(tmp_path: Path, section: str, key: str) -> None:
    """Files read only when the server starts are still config errors, not tracebacks."""
    cfg = tmp_path / "config.yml"
    root = tmp_path / "data"
    cfg.write_text(f"storage:\n  filesystem: {{rootdirectory: {root}}}\n"
                   + section.replace("MISSING", str(tmp_path / "missing")))
    run = subprocess.run([sys.executable, "-m", "layerstore_core.cli", "serve", "--config",
                          str(cfg)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stderr
    assert key in run.stderr and "Traceback" not in run.stderr


def test_purge_uploads_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from layerstore_core import Registry, load_driver

    root = tmp_path / "root"
    registry = Registry(load_driver("filesystem", rootdirectory=str(root)))
    upload = registry.repository("old/repo").blobs.create_upload()
    upload.write(b"abandoned")
    upload.close()
    cfg = tmp_path / "config.yml"
    cfg.write_text(f"storage:\n  filesystem:\n    rootdirectory: {root}\n")
    assert cli.main(["purge-uploads", "--config", str(cfg), "--age", "1h", "--dry-run"]) == 0
    assert "would purge 0 upload(s)" in capsys.readouterr().out
    assert cli.main(["purge-uploads", "--config", str(cfg), "--age", "0s", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would purge old/repo {upload.id}" in out
    assert cli.main(["purge-uploads", "--config", str(cfg), "--age", "0s"]) == 0
    assert "purged 1 upload(s)" in capsys.readouterr().out
    assert cli.main(["purge-uploads", "--config", str(cfg), "--age", "0s"]) == 0
    assert "purged 0 upload(s)" in capsys.readouterr().out
