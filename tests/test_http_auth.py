"""htpasswd authentication, redirects to the backend, and request-header handling."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import bcrypt
import httpx
import pytest

from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.server import Config
from layerstore_core.server.auth import Htpasswd as HtpasswdFile
from layerstore_core.server.config import Htpasswd, PurgeConfig
from layerstore_core.server.threaded import ThreadedServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def config(**overrides: object) -> Config:
    values: dict[str, object] = {"driver": "inmemory", "driver_params": {},
                                 "secret": "s", "purge": PurgeConfig(enabled=False)}
    values.update(overrides)
    return Config(**values)  # type: ignore[arg-type]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_htpasswd_challenge_then_success(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"# users\nalice:{hashed.replace('$2b$', '$2y$', 1)}\nbob:plain\n")
    cfg = config(htpasswd=Htpasswd("test-realm", str(htpasswd)))
    with ThreadedServer(cfg, InMemoryDriver()) as srv, httpx.Client(base_url=srv.url) as c:
        r = c.get("/v2/")
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == 'Basic realm="test-realm"'
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
        for bad in (basic("alice", "wrong"), basic("bob", "plain"), basic("eve", "x"),
                    "Basic !!!", "Bearer abc"):
            r = c.get("/v2/", headers={"Authorization": bad})
            assert r.status_code == 401, bad
        ok = {"Authorization": basic("alice", "s3cret")}
        assert c.get("/v2/", headers=ok).status_code == 200
        data = b"authorized blob"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = c.post("/v2/a/blobs/uploads/", params={"digest": digest}, content=data, headers=ok)
        assert r.status_code == 201
        assert c.post("/v2/a/blobs/uploads/", content=data).status_code == 401
        assert c.get(f"/v2/a/blobs/{digest}", headers=ok).content == data


class RedirectingDriver(InMemoryDriver):
    """An in-memory driver that hands out (fake) direct URLs, like a presigning cloud driver."""

    def _redirect_url(self, path: str, method: str) -> str | None:
        return f"http://backend.invalid{path}"


def test_blob_get_redirects_unless_disabled() -> None:
    data = b"redirect me"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    for disabled in (False, True):
        cfg = config(redirect_disabled=disabled)
        with ThreadedServer(cfg, RedirectingDriver()) as srv, httpx.Client(base_url=srv.url) as c:
            c.post("/v2/r/blobs/uploads/", params={"digest": digest}, content=data)
            r = c.get(f"/v2/r/blobs/{digest}")
            if disabled:
                assert r.status_code == 200 and r.content == data
            else:
                assert r.status_code == 307
                assert r.headers["Location"].startswith("http://backend.invalid/docker/registry")
            assert c.head(f"/v2/r/blobs/{digest}").status_code == 200


def test_repeated_accept_headers_are_joined() -> None:
    with ThreadedServer(config(), InMemoryDriver()) as srv, httpx.Client(base_url=srv.url) as c:
        cfg = b'{"architecture":"amd64","os":"linux"}'
        cd = "sha256:" + hashlib.sha256(cfg).hexdigest()
        c.post("/v2/m/blobs/uploads/", params={"digest": cd}, content=cfg)
        body = (b'{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":'
                b'"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[]}'
                % (OCI_MANIFEST.encode(), cd.encode(), len(cfg)))
        assert c.put("/v2/m/manifests/t", content=body,
                     headers={"Content-Type": OCI_MANIFEST}).status_code == 201
        headers = [("Accept", "application/vnd.docker.distribution.manifest.v2+json"),
                   ("Accept", OCI_MANIFEST)]
        r = c.get("/v2/m/manifests/t", headers=headers)
        assert r.status_code == 200 and r.content == body


def test_unknown_user_costs_a_bcrypt_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown user is checked against a dummy hash of the file's cost, as a known one is.

    Counted, not timed: the number of bcrypt checks is what makes the two cost the same.
    """
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=5))
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{hashed.decode()}\n")
    table = HtpasswdFile(path, "r")
    checked: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed_password: bytes) -> bool:
        checked.append(hashed_password)
        return real(password, hashed_password)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    assert table.check(basic("mallory", "pw")) is None
    assert table.check(basic("alice", "wrong")) is None
    assert len(checked) == 2
    assert checked[0].split(b"$")[2] == b"05"  # the dummy has alice's cost


def test_password_over_72_bytes_is_401(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"alice:{hashed}\nbroken:$2y$05$not-a-real-hash\n")
    cfg = config(htpasswd=Htpasswd("r", str(htpasswd)))
    with ThreadedServer(cfg, InMemoryDriver()) as srv, httpx.Client(base_url=srv.url) as c:
        for auth in (basic("alice", "x" * 100), basic("eve", "x" * 100), basic("broken", "x")):
            r = c.get("/v2/", headers={"Authorization": auth})
            assert r.status_code == 401, r.text
            assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
