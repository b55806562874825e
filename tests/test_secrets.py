"""Secrets never show in a repr or a log line: driver credentials, http.secret, htpasswd, _state."""

from __future__ import annotations

import logging
from pathlib import Path

import bcrypt
import httpx
import pytest
from layerstore_azure.config import AzureParams
from layerstore_gcs.config import GCSParams
from layerstore_s3.config import S3Params

from layerstore_core.params import parse_params
from layerstore_core.server import Config
from layerstore_core.server.app import create_app
from layerstore_core.server.config import Htpasswd as HtpasswdConfig
from layerstore_core.server.config import PurgeConfig
from layerstore_core.server.serve import redact_upload_state
from layerstore_core.server.tokens import TokenSigner
from tests.backends._servers import free_port
from tests.images import RegistryProcess, write_config

SECRET = "s3cr3t-value-that-must-not-leak"


def test_driver_params_reprs_hold_no_secret() -> None:
    s3 = parse_params(S3Params, {"bucket": "bucket", "accesskey": SECRET + "a",
                                 "secretkey": SECRET + "s", "sessiontoken": SECRET + "t"},
                      owner="s3")
    azure_key = parse_params(AzureParams, {"container": "cont", "accountname": "acct",
                                           "accountkey": SECRET}, owner="azure")
    azure_cs = parse_params(AzureParams, {"container": "cont", "connectionstring":
                                          f"AccountName=a;AccountKey={SECRET}"}, owner="azure")
    gcs = parse_params(GCSParams, {"bucket": "bucket", "keyfile": "/etc/key.json"}, owner="gcs")
    for params in (s3, azure_key, azure_cs, gcs):
        assert SECRET not in repr(params) and SECRET not in str(params)
    assert s3.secretkey == SECRET + "s"  # still there for the driver to use
    assert "bucket='bucket'" in repr(s3)


def test_server_state_repr_holds_no_secret(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "htpasswd").write_text(f"alice:{hashed}\n")
    config = Config(driver="inmemory", driver_params={}, secret=SECRET,
                    purge=PurgeConfig(enabled=False),
                    htpasswd=HtpasswdConfig("realm", str(tmp_path / "htpasswd")))
    state = create_app(config).state
    for shown in (repr(config), repr(state), repr(state.signer), repr(state.htpasswd)):
        assert SECRET not in shown and hashed not in shown and hashed[7:] not in shown
    assert "TokenSigner" in repr(TokenSigner(SECRET))
    s3_config = Config(driver="s3", driver_params={"bucket": "b", "secretkey": SECRET})
    assert SECRET not in repr(s3_config) and "driver='s3'" in repr(s3_config)


def test_access_log_lines_hold_no_upload_state(caplog: pytest.LogCaptureFixture) -> None:
    redact_upload_state()
    access = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET",
                    f"/v2/a/blobs/uploads/u?_state={SECRET}&x=1", "1.1", 204)
    assert caplog.records and SECRET not in caplog.text
    assert "_state=REDACTED&x=1" in caplog.text


def test_serve_debug_log_holds_no_token_or_secret(tmp_path: Path) -> None:
    """A real ``layerstore serve`` at debug level (access log on): upload, status, cancel."""
    port = free_port()
    config = write_config(tmp_path / "config.yml", "filesystem",
                          {"rootdirectory": str(tmp_path / "root")}, port,
                          {"log": {"level": "debug"}, "http": {"secret": SECRET}})
    log = tmp_path / "serve.log"
    with RegistryProcess.layerstore(config, port, log) as proc, \
            httpx.Client(base_url=proc.url, timeout=60) as c:
        started = c.post("/v2/a/blobs/uploads/")
        location = started.headers["Location"]
        token = location.split("_state=")[1]
        assert c.patch(location, content=b"data").status_code == 202
        assert c.get(location).status_code in (204, 400)  # the token is stale after PATCH
        c.delete(location)
    text = log.read_text()
    assert "blobs/uploads" in text, "the access log is on at debug level"
    assert "_state=REDACTED" in text
    assert token not in text and token[:20] not in text and SECRET not in text
