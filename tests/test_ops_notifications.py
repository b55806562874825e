"""Webhook notifications (issue 14) against a local HTTP sink: once per event, never blocking."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.server.config import ConfigError, parse_config
from layerstore_core.server.notifications import MEDIA_TYPE
from layerstore_core.server.threaded import ThreadedServer

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


class Sink:
    """An HTTP server that records every envelope; ``gate`` can hold its answers."""

    def __init__(self, status: int = 200) -> None:
        self.envelopes: list[dict[str, Any]] = []
        self.headers: list[Any] = []  # email.message.Message: names case-insensitive
        self.gate = threading.Event()
        self.gate.set()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sink.gate.wait(60)
                sink.headers.append(self.headers)
                sink.envelopes.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"

    @contextmanager
    def running(self) -> Iterator[Sink]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.gate.set()
            self.server.shutdown()
            self.server.server_close()

    def events(self) -> list[dict[str, Any]]:
        return [e for env in self.envelopes for e in env["events"]]


def _wait(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _config(*endpoints: dict[str, Any]) -> Any:
    return parse_config({"storage": {"inmemory": {}, "delete": {"enabled": True}},
                         "http": {"secret": "s"},
                         "notifications": {"endpoints": list(endpoints)}}, {})


def _push(c: httpx.Client, repo: str) -> tuple[str, str]:
    blob = b"notified layer"
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    r = c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=blob)
    assert r.status_code == 201, r.text
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                           "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                                      "digest": digest, "size": len(blob)},
                           "layers": []}).encode()
    r = c.put(f"/v2/{repo}/manifests/v1", content=manifest,
              headers={"Content-Type": MANIFEST_TYPE})
    assert r.status_code == 201, r.text
    return digest, r.headers["Docker-Content-Digest"]


def test_events_delivered_once_each_with_distribution_envelope() -> None:
    sink = Sink()
    with sink.running():
        cfg = _config({"name": "sink", "url": sink.url, "headers": {"Authorization":
                                                                      ["Bearer t"]},
                       "timeout": "5s", "threshold": 3, "backoff": "1s"},
                      {"name": "off", "url": "http://127.0.0.1:9/", "disabled": True})
        with ThreadedServer(cfg, InMemoryDriver()) as srv, \
                httpx.Client(base_url=srv.url, headers={"User-Agent": "notify-test"}) as c:
            blob, manifest = _push(c, "lib/app")
            assert c.get("/v2/lib/app/manifests/v1",
                         headers={"Accept": MANIFEST_TYPE}).status_code == 200
            assert c.get(f"/v2/lib/app/blobs/{blob}").status_code == 200
            r = c.post("/v2/other/blobs/uploads/", params={"mount": blob, "from": "lib/app"})
            assert r.status_code == 201
            assert c.delete(f"/v2/lib/app/manifests/{manifest}").status_code == 202
            c.get("/v2/")  # not an event
            _wait(lambda: len(sink.events()) >= 6)
            time.sleep(0.5)  # a duplicate would show up now
    events = sink.events()
    assert [(e["action"], e["target"]["repository"]) for e in events] == [
        ("push", "lib/app"), ("push", "lib/app"), ("pull", "lib/app"), ("pull", "lib/app"),
        ("mount", "other"), ("delete", "lib/app")]
    assert all(len(env["events"]) == 1 for env in sink.envelopes)
    assert len({e["id"] for e in events}) == 6
    assert all(h["Content-Type"] == MEDIA_TYPE and h["Authorization"] == "Bearer t"
               for h in sink.headers)
    blob_push, manifest_push, manifest_pull = events[0], events[1], events[2]
    assert blob_push["target"]["digest"] == blob
    assert blob_push["target"]["mediaType"] == "application/octet-stream"
    assert manifest_push["target"].items() >= {"digest": manifest, "tag": "v1",
                                               "mediaType": MANIFEST_TYPE}.items()
    assert manifest_push["target"]["size"] > 0
    assert manifest_pull["target"]["mediaType"] == MANIFEST_TYPE
    assert events[4]["target"]["fromRepository"] == "lib/app"
    assert events[5]["target"]["digest"] == manifest
    assert manifest_push["request"]["method"] == "PUT"
    assert manifest_push["request"]["useragent"] == "notify-test"
    assert manifest_push["source"]["instanceID"] and manifest_push["timestamp"].endswith("Z")
    assert manifest_push["target"]["url"].endswith(f"/v2/lib/app/manifests/{manifest}")


def test_stalled_and_failing_endpoints_never_block_pushes() -> None:
    stalled, failing = Sink(), Sink(status=500)
    stalled.gate.clear()  # answers nothing until released
    with stalled.running(), failing.running():
        cfg = _config({"name": "stalled", "url": stalled.url, "timeout": "60s"},
                      {"name": "failing", "url": failing.url, "threshold": 2,
                       "backoff": "200ms", "ignore": {"actions": ["pull"]}})
        with ThreadedServer(cfg, InMemoryDriver()) as srv, httpx.Client(base_url=srv.url,
                                                                         timeout=30) as c:
            for i in range(3):  # each push returns while the stalled sink holds its delivery
                _push(c, f"repo{i}")
            c.get("/v2/repo0/manifests/v1", headers={"Accept": MANIFEST_TYPE})
            _wait(lambda: len(failing.envelopes) >= 4)  # retried, with backoff
            assert all(e["action"] == "push" for e in failing.events())  # pulls ignored
            assert stalled.envelopes == []
            stalled.gate.set()
            _wait(lambda: len(stalled.events()) == 7)  # 6 pushes and 1 pull, in order
    assert [e["target"]["repository"] for e in stalled.events()][:2] == ["repo0", "repo0"]


def test_notification_config_errors() -> None:
    for bad in ({"endpoints": {"name": "x"}}, {"endpoints": [{"name": "x"}]},
                {"endpoints": [{"name": "x", "url": "ftp://h"}]},
                {"endpoints": [{"name": "x", "url": "http://h", "threshold": "many"}]},
                {"endpoints": [{"name": "x", "url": "http://h", "ignore": {"tags": []}}]},
                {"endpoints": [{"name": "x", "url": "http://h", "bogus": 1}]}):
        with pytest.raises(ConfigError, match="notifications"):
            parse_config({"notifications": bad}, {})
