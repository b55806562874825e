"""htpasswd authentication, redirects to the backend, and request-header handling."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import bcrypt
import httpx

from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.server import Config
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
