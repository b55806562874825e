"""``storage.maintenance.readonly``: the cut-over's last step; reads work, writes are 405."""

from __future__ import annotations

import httpx

from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.server import Config
from layerstore_core.server.config import parse_config
from layerstore_core.server.threaded import ThreadedServer
from tests.stores import populate


def test_readonly_config_key() -> None:
    raw = {"storage": {"inmemory": {}, "maintenance": {"readonly": {"enabled": True}}}}
    assert parse_config(raw).readonly and not parse_config(None).readonly


def test_readonly_server_serves_and_refuses_writes() -> None:
    driver = InMemoryDriver()
    images = populate(driver, big=4096)
    cfg = Config(driver="inmemory", driver_params={}, secret="s", readonly=True)
    with ThreadedServer(cfg, driver) as srv, httpx.Client(base_url=srv.url) as c:
        got = c.get("/v2/lib/app/manifests/v2",
                    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert got.status_code == 200 and got.headers["Docker-Content-Digest"] == \
            images[1].manifest
        for method, path in (("POST", "/v2/lib/app/blobs/uploads/"),
                             ("PUT", "/v2/lib/app/manifests/v9"),
                             ("DELETE", f"/v2/lib/app/manifests/{images[1].manifest}")):
            r = c.request(method, path, content=b"{}")
            assert r.status_code == 405, (method, r.text)
            assert r.json()["errors"][0]["code"] == "UNSUPPORTED"
