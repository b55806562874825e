"""``http.prefix``, ``http.host``, ``http.relativeurls``: every Location and Link, in each mode.

Expected values are what Distribution 2.8.2 (Debian's ``docker-registry``) answers with the same
config and headers. The last tests put nginx in front, mapping ``/v2/`` onto ``/<prefix>/v2/``
as an operator would, and push and pull an image with skopeo through it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.server.config import ConfigError, parse_config
from layerstore_core.server.metrics import RequestRecord
from layerstore_core.server.notifications import event_for
from layerstore_core.server.threaded import ThreadedServer
from tests.backends._servers import free_port
from tests.images import build_oci_layout, read_oci_layout, skopeo, write_policy

TIMEOUT = 60.0
BLOB = b"abc"
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
CONFIG_BLOB = b"{}"
CONFIG_DIGEST = "sha256:" + hashlib.sha256(CONFIG_BLOB).hexdigest()
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _config(http: dict[str, Any], **extra: Any) -> Any:
    return parse_config({"storage": {"inmemory": {}, "maintenance": {
        "uploadpurging": {"enabled": False}}}, "http": {"secret": "s", **http}, **extra})


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ThreadedServer] = []

    def start(http: dict[str, Any], **extra: Any) -> ThreadedServer:
        srv = ThreadedServer(_config(http, **extra), InMemoryDriver()).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


def _manifest(layers: list[dict[str, Any]]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json", "digest": CONFIG_DIGEST,
        "size": len(CONFIG_BLOB)}, "layers": layers}).encode()


def _locations(c: httpx.Client, base: str, follow: tuple[str, str] = ("", ""),
               **headers: str) -> dict[str, str]:
    """Every Location/Link kind: upload start, PATCH, blob 201, manifest 201, tags/catalog Link.

    ``follow`` maps a Location's start onto where to send it (as a proxy in front would);
    otherwise it is resolved against the request.
    """
    out: dict[str, str] = {}

    def resolve(r: httpx.Response) -> str:
        location = r.headers["Location"]
        if follow[0] and location.startswith(follow[0]):
            return follow[1] + location[len(follow[0]):]
        return str(httpx.URL(r.url).join(location))

    r = c.post(f"{base}/v2/a/blobs/uploads/", headers=headers)
    assert r.status_code == 202, r.text
    out["start"] = r.headers["Location"]
    r = c.patch(resolve(r), content=BLOB, headers=headers)
    out["patch"] = r.headers["Location"]
    r = c.put(f"{resolve(r)}&digest={DIGEST}", headers=headers)
    assert r.status_code == 201, r.text
    out["blob"] = r.headers["Location"]
    for repo, tag in (("a", "t1"), ("a", "t2"), ("b", "t1")):
        c.post(f"{base}/v2/{repo}/blobs/uploads/", params={"mount": DIGEST, "from": "a"})
        c.post(f"{base}/v2/{repo}/blobs/uploads/", params={"digest": CONFIG_DIGEST},
               content=CONFIG_BLOB)
        r = c.put(f"{base}/v2/{repo}/manifests/{tag}", content=_manifest([{
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": DIGEST,
            "size": len(BLOB)}]), headers={**headers, "Content-Type": OCI_MANIFEST})
        assert r.status_code == 201, r.text
        out.setdefault("manifest", r.headers["Location"])
    out["tags"] = c.get(f"{base}/v2/a/tags/list", params={"n": 1}, headers=headers).headers["Link"]
    out["catalog"] = c.get(f"{base}/v2/_catalog", params={"n": 1}, headers=headers
                           ).headers["Link"]
    return out


def _check(found: dict[str, str], root: str) -> None:
    """Each URL in ``found`` starts with ``root`` followed by its route."""
    assert found["start"].startswith(f"{root}/v2/a/blobs/uploads/")
    assert "?_state=" in found["start"] and found["patch"].startswith(f"{root}/v2/a/blobs/uploads/")
    assert found["blob"] == f"{root}/v2/a/blobs/{DIGEST}"
    assert found["manifest"].startswith(f"{root}/v2/a/manifests/sha256:")
    assert found["tags"] == f'<{root}/v2/a/tags/list?n=1&last=t1>; rel="next"'
    assert found["catalog"] == f'<{root}/v2/_catalog?n=1&last=a>; rel="next"'


def test_default_is_absolute_from_the_request(serve: Any) -> None:
    srv = serve({})
    with httpx.Client(timeout=TIMEOUT) as c:
        _check(_locations(c, srv.url), srv.url)
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a.example, b.example"}
        assert c.post(f"{srv.url}/v2/x/blobs/uploads/", headers=forwarded).headers[
            "Location"].startswith("https://a.example/v2/x/blobs/uploads/")
        rfc = {"Forwarded": 'for=1.2.3.4;proto=https;host="c.example:8443", for=5.6.7.8'}
        assert c.post(f"{srv.url}/v2/x/blobs/uploads/", headers=rfc).headers[
            "Location"].startswith("https://c.example:8443/v2/x/blobs/uploads/")
        host = c.post(f"{srv.url}/v2/x/blobs/uploads/", headers={"Host": "e.example:7000"})
        assert host.headers["Location"].startswith("http://e.example:7000/v2/x/")
        # a forwarded value that is no host or scheme is skipped, never copied into a header
        bad = {"X-Forwarded-Host": "evil.example/<x>", "X-Forwarded-Proto": "javascript"}
        assert c.post(f"{srv.url}/v2/x/blobs/uploads/", headers=bad).headers[
            "Location"].startswith(f"{srv.url}/v2/x/blobs/uploads/")


def test_prefix_serves_the_api_below_it_only(serve: Any) -> None:
    srv = serve({"prefix": "/pre/"})
    with httpx.Client(timeout=TIMEOUT) as c:
        _check(_locations(c, f"{srv.url}/pre"), f"{srv.url}/pre")
        assert c.get(f"{srv.url}/pre/v2/").status_code == 200
        unprefixed = c.get(f"{srv.url}/v2/")
        assert unprefixed.status_code == 404 and unprefixed.json()["errors"][0]["code"] == \
            "NAME_UNKNOWN"
        assert c.get(f"{srv.url}/prefix/v2/").status_code == 404
        assert c.get(f"{srv.url}/").status_code == 200  # the load balancers' probe stays at /


def test_relativeurls_give_the_route_without_the_prefix(serve: Any) -> None:
    srv = serve({"prefix": "pre", "relativeurls": True})
    with httpx.Client(timeout=TIMEOUT) as c:
        found = _locations(c, f"{srv.url}/pre", follow=("/v2/", f"{srv.url}/pre/v2/"))
    # Distribution 2.8.2 answers /v2/... here: right behind a proxy mapping /v2/ to /pre/v2/
    _check(found, "")


def test_host_wins_over_relativeurls_and_request_headers(serve: Any) -> None:
    srv = serve({"prefix": "/pre/", "relativeurls": True,
                 "host": "https://reg.example.com:8443/sub/"})
    with httpx.Client(timeout=TIMEOUT) as c:
        found = _locations(c, f"{srv.url}/pre", ("https://reg.example.com:8443/sub/",
                                                 f"{srv.url}/pre/"),
                           **{"X-Forwarded-Host": "other.example"})
    _check(found, "https://reg.example.com:8443/sub")


@pytest.mark.parametrize("http", [
    {"host": "reg.example.com"}, {"host": "ftp://reg.example.com/"},
    {"host": "https://reg.example.com/?q=1"}, {"prefix": "/a b/"}, {"relativeurls": "maybe"},
])
def test_bad_url_settings_are_config_errors(http: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"http\.(host|prefix|relativeurls)"):
        _config(http)


# -- validation.manifests.urls ----------------------------------------------------------------

NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
UNKNOWN_BLOB = "sha256:" + "1" * 64


def _push_foreign(c: httpx.Client, base: str, urls: list[str] | None,
                  media_type: str = NONDIST) -> httpx.Response:
    layer: dict[str, Any] = {"mediaType": media_type, "digest": UNKNOWN_BLOB, "size": 3}
    if urls is not None:
        layer["urls"] = urls
    c.post(f"{base}/v2/f/blobs/uploads/", params={"digest": CONFIG_DIGEST}, content=CONFIG_BLOB)
    return c.put(f"{base}/v2/f/manifests/t", content=_manifest([layer]),
                 headers={"Content-Type": OCI_MANIFEST})


def _outcome(r: httpx.Response) -> str:
    return str(r.status_code) if r.status_code < 400 else r.json()["errors"][0]["code"]


GOOD, BAD, EVIL = ("https://good.example/x", "https://good.example/bad/x",
                   "https://evil.example/x")


def test_urls_allow_and_deny(serve: Any) -> None:
    srv = serve({}, validation={"manifests": {"urls": {
        "allow": [r"^https?://good\.example/"], "deny": [r"^https?://good\.example/bad"]}}})
    with httpx.Client(timeout=TIMEOUT) as c:
        assert _outcome(_push_foreign(c, srv.url, [GOOD])) == "201"
        for urls in ([BAD], [EVIL], [GOOD, EVIL], ["ftp://good.example/x"],
                     ["https://good.example/x#frag"], ["not a url"]):
            r = _push_foreign(c, srv.url, urls)
            assert r.status_code == 400 and _outcome(r) == "MANIFEST_INVALID", (urls, r.text)
        assert "deny" in _push_foreign(c, srv.url, [BAD]).json()["errors"][0]["message"]
        # without urls the layer must be stored, as any other
        assert _outcome(_push_foreign(c, srv.url, None)) == "MANIFEST_BLOB_UNKNOWN"
        assert _outcome(_push_foreign(c, srv.url, [])) == "MANIFEST_BLOB_UNKNOWN"
        # every layer with urls is checked, whatever its media type
        zstd = _push_foreign(c, srv.url, [EVIL], "application/vnd.oci.image.layer.v1.tar+zstd")
        assert _outcome(zstd) == "MANIFEST_INVALID"


def test_urls_default_refuses_and_disabled_allows(serve: Any) -> None:
    default, disabled = serve({}), serve({}, validation={"disabled": True, "manifests": {
        "urls": {"allow": [r"^https://good\.example/"]}}})
    with httpx.Client(timeout=TIMEOUT) as c:
        refused = _push_foreign(c, default.url, [GOOD])  # Distribution: no allow list, no URLs
        assert _outcome(refused) == "MANIFEST_INVALID" and "allow" in refused.text
        assert _outcome(_push_foreign(c, disabled.url, [EVIL])) == "201"
        assert _outcome(_push_foreign(c, disabled.url, ["ftp://x.example/y"])) == \
            "MANIFEST_INVALID"
        foreign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
        assert _outcome(_push_foreign(c, disabled.url, None, foreign)) == "MANIFEST_INVALID"


def test_urls_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"validation\.manifests\.urls\.allow"):
        _config({}, validation={"manifests": {"urls": {"allow": ["("]}}})
    with pytest.raises(ConfigError, match=r"validation\.manifests\.urls\.nope"):
        _config({}, validation={"manifests": {"urls": {"nope": []}}})


# -- skopeo through nginx, with the API under a prefix ----------------------------------------

def _nginx(workdir: Path, backend_port: int, port: int) -> subprocess.Popen[bytes]:
    """nginx on ``port`` mapping ``/v2/`` onto the backend's ``/pre/v2/``, as an operator would."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.path.exists(nginx), "nginx is required (apt-get install nginx)"
    workdir.mkdir(parents=True, exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    (workdir / "nginx.conf").write_text(
        f"{user}daemon off;\npid {workdir}/nginx.pid;\nerror_log {workdir}/error.log warn;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n access_log {workdir}/access.log;\n"
        f" client_body_temp_path {workdir}/body;\n proxy_temp_path {workdir}/proxy;\n"
        f" server {{\n  listen 127.0.0.1:{port};\n  client_max_body_size 0;\n"
        "  proxy_request_buffering off;\n  proxy_http_version 1.1;\n"
        f"  location /v2/ {{\n   proxy_pass http://127.0.0.1:{backend_port}/pre/v2/;\n"
        "   proxy_set_header Host $http_host;\n  }\n }\n}\n")
    proc = subprocess.Popen([nginx, "-p", str(workdir), "-c", str(workdir / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, (workdir / "error.log").read_text(errors="replace")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("nginx did not answer")


@pytest.mark.parametrize("mode", ["relativeurls", "host"])
def test_skopeo_through_a_prefix(mode: str, tmp_path: Path) -> None:
    assert shutil.which("skopeo"), "skopeo is required (apt-get install skopeo)"
    image = build_oci_layout(tmp_path / "image", (4096, 2 * 2**20), tag="v1")
    front = free_port()
    http: dict[str, Any] = {"prefix": "/pre/", "relativeurls": True} if mode == "relativeurls" \
        else {"prefix": "/pre/", "host": f"http://127.0.0.1:{front}/"}
    config = parse_config({"storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
                           "http": {"secret": "s", **http}})
    policy = write_policy(tmp_path / "policy.json")
    with ThreadedServer(config) as srv:
        proc = _nginx(tmp_path / "nginx", int(srv.url.rsplit(":", 1)[1]), front)
        try:
            remote = f"docker://127.0.0.1:{front}/through/prefix:v1"
            push = skopeo("copy", "--dest-tls-verify=false", f"oci:{image.path}:v1", remote,
                          policy=policy)
            assert push.returncode == 0, push.stderr
            pull = skopeo("copy", "--src-tls-verify=false", remote, f"oci:{tmp_path / 'out'}:v1",
                          policy=policy)
            assert pull.returncode == 0, pull.stderr
            assert read_oci_layout(tmp_path / "out", "v1") == (image.manifest_digest,
                                                                image.blob_digests)
            # the registry saw every request under the prefix
            assert httpx.get(f"{srv.url}/pre/v2/through/prefix/tags/list").json()["tags"] == \
                ["v1"]
        finally:
            proc.terminate()
            proc.wait(10)


@pytest.mark.parametrize(("http", "headers", "url"), [
    ({"prefix": "/pre/"}, [(b"host", b"r.example:5000"), (b"x-forwarded-proto", b"https")],
     "https://r.example:5000/pre/v2/a/manifests/" + DIGEST),
    ({"prefix": "/pre/", "relativeurls": True}, [(b"host", b"r.example")],
     "/v2/a/manifests/" + DIGEST),
    ({"host": "https://reg.example.com/"}, [(b"host", b"r.example")],
     "https://reg.example.com/v2/a/manifests/" + DIGEST),
])
def test_notification_target_url_is_the_location(http: dict[str, Any],
                                                 headers: list[tuple[bytes, bytes]],
                                                 url: str) -> None:
    record = RequestRecord("PUT", "/v2/a/manifests/t", "manifest",
                           scope={"type": "http", "method": "PUT", "path": "/v2/a/manifests/t",
                                  "headers": headers, "scheme": "http"},
                           response_headers=[(b"docker-content-digest", DIGEST.encode())],
                           status=201)
    event = event_for(record, "r.example", _config(http).urls)
    assert event is not None and event["target"]["url"] == url
