"""The OCI Distribution API over a live uvicorn server, on every registered backend."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

import httpx
import pytest

from layerstore_core.server import Config
from layerstore_core.server.config import PurgeConfig
from layerstore_core.server.threaded import ThreadedServer
from layerstore_core.testing import Backend

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_config(backend: Backend, **overrides: object) -> Config:
    values: dict[str, object] = {
        "driver": backend.driver, "driver_params": backend.params, "delete_enabled": True,
        "secret": "test-secret", "purge": PurgeConfig(enabled=False),
        "redirect_disabled": True,  # serve bytes here; 307s are tested in test_http_auth/skopeo
    }
    values.update(overrides)
    return Config(**values)  # type: ignore[arg-type]


@pytest.fixture
def client(any_backend: Backend) -> Iterator[httpx.Client]:
    with ThreadedServer(make_config(any_backend), any_backend.make()) as srv:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            yield c


def origin(c: httpx.Client) -> str:
    """What absolute Location and Link URLs start with: the address the client used."""
    return str(c.base_url).rstrip("/")


def assert_error(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    if resp.request.method != "HEAD":
        assert resp.json()["errors"][0]["code"] == code


def push_blob(c: httpx.Client, name: str, data: bytes) -> str:
    digest = sha(data)
    r = c.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201, r.text
    return digest


def start_upload(c: httpx.Client, name: str) -> str:
    r = c.post(f"/v2/{name}/blobs/uploads/")
    assert r.status_code == 202, r.text
    assert r.headers["Range"] == "0-0"
    assert r.headers["Docker-Upload-UUID"]
    assert int(r.headers["OCI-Chunk-Min-Length"]) > 0
    return r.headers["Location"]


def with_query(location: str, **params: str) -> str:
    parts = urlsplit(location)
    query = parts.query + "".join(f"&{k}={quote(v, safe='')}" for k, v in params.items())
    return urlunsplit(parts._replace(query=query.lstrip("&")))


def test_version_check(client: httpx.Client) -> None:
    r = client.get("/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    r = client.post("/v2/noslash/blobs/uploads")
    assert r.status_code == 202  # absolute, as Distribution's default (http.relativeurls: false)
    assert r.headers["Location"].startswith(f"{origin(client)}/v2/noslash/blobs/uploads/")


def test_monolithic_post_stores_body(client: httpx.Client) -> None:
    data = os.urandom(3000)
    digest = push_blob(client, "a/b", data)
    head = client.head(f"/v2/a/b/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "3000"
    assert head.headers["Docker-Content-Digest"] == digest
    got = client.get(f"/v2/a/b/blobs/{digest}")
    assert got.status_code == 200 and got.content == data


def test_chunked_upload_with_content_range(client: httpx.Client) -> None:
    data = os.urandom(250_000)
    loc = start_upload(client, "chunks")
    for start in range(0, len(data), 100_000):
        chunk = data[start:start + 100_000]
        r = client.patch(loc, content=chunk, headers={
            "Content-Range": f"{start}-{start + len(chunk) - 1}",
            "Content-Type": "application/octet-stream"})
        assert r.status_code == 202, r.text
        assert r.headers["Range"] == f"0-{start + len(chunk) - 1}"
        loc = r.headers["Location"]
    r = client.put(with_query(loc, digest=sha(data)))
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == sha(data)
    assert client.get(r.headers["Location"]).content == data


def test_wrong_offset_gets_416_and_upload_recovers(client: httpx.Client) -> None:
    data = os.urandom(30_000)
    loc = start_upload(client, "recover")
    r = client.patch(loc, content=data[:10_000], headers={"Content-Range": "0-9999"})
    assert r.status_code == 202
    loc = r.headers["Location"]
    bad = client.patch(loc, content=data[20_000:], headers={"Content-Range": "20000-29999"})
    assert_error(bad, 416, "RANGE_INVALID")
    assert bad.headers["Range"] == "0-9999"
    status = client.get(bad.headers["Location"])
    assert status.status_code == 204 and status.headers["Range"] == "0-9999"
    r = client.patch(status.headers["Location"], content=data[10_000:20_000],
                     headers={"Content-Range": "10000-19999"})
    assert r.status_code == 202
    r = client.put(with_query(r.headers["Location"], digest=sha(data)), content=data[20_000:],
                   headers={"Content-Range": "20000-29999"})
    assert r.status_code == 201, r.text
    assert client.get(f"/v2/recover/blobs/{sha(data)}").content == data


def test_streamed_chunked_patch_then_empty_put(client: httpx.Client) -> None:
    parts = [os.urandom(70_000) for _ in range(5)]
    data = b"".join(parts)
    loc = start_upload(client, "stream")
    r = client.patch(loc, content=iter(parts))  # an iterator: Transfer-Encoding: chunked
    assert r.status_code == 202, r.text
    assert r.headers["Range"] == f"0-{len(data) - 1}"
    r = client.put(with_query(r.headers["Location"], digest=sha(data)))
    assert r.status_code == 201, r.text
    assert client.get(f"/v2/stream/blobs/{sha(data)}").content == data


def test_put_with_whole_body_and_digest_mismatch(client: httpx.Client) -> None:
    data = os.urandom(5000)
    loc = start_upload(client, "whole")
    r = client.put(with_query(loc, digest=sha(data)), content=data)
    assert r.status_code == 201, r.text
    loc = start_upload(client, "whole")
    wrong = client.put(with_query(loc, digest=sha(b"other")), content=data)
    assert_error(wrong, 400, "DIGEST_INVALID")
    assert_error(client.head(f"/v2/whole/blobs/{sha(b'other')}"), 404, "BLOB_UNKNOWN")


def test_upload_status_and_cancel(client: httpx.Client) -> None:
    loc = start_upload(client, "cancel")
    r = client.patch(loc, content=b"x" * 100)
    loc = r.headers["Location"]
    s = client.get(loc)
    assert s.status_code == 204 and s.headers["Range"] == "0-99"
    assert client.delete(loc).status_code == 204
    assert_error(client.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")


def test_forged_and_foreign_tokens_are_rejected(client: httpx.Client) -> None:
    loc = start_upload(client, "forge")
    other = start_upload(client, "forge")
    token = parse_qs(urlsplit(loc).query)["_state"][0]
    body, mac = token.split(".")
    flipped = body[:-1] + ("A" if body[-1] != "A" else "B")
    path = urlsplit(loc).path
    for bad in (f"{flipped}.{mac}", f"{body}.{mac[:-2]}xx", "garbage", ""):
        r = client.patch(f"{path}?_state={quote(bad, safe='')}", content=b"data")
        assert_error(r, 400, "BLOB_UPLOAD_INVALID")
    assert_error(client.patch(path, content=b"data"), 400, "BLOB_UPLOAD_INVALID")
    other_path = urlsplit(other).path
    r = client.patch(f"{other_path}?_state={quote(token, safe='')}", content=b"data")
    assert_error(r, 400, "BLOB_UPLOAD_INVALID")
    assert client.get(loc).headers["Range"] == "0-0"  # nothing was appended


def test_cross_repository_mount(client: httpx.Client) -> None:
    digest = push_blob(client, "src", b"shared layer")
    r = client.post("/v2/dst/blobs/uploads/", params={"mount": digest, "from": "src"})
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"{origin(client)}/v2/dst/blobs/{digest}"
    assert client.get(f"/v2/dst/blobs/{digest}").content == b"shared layer"
    unknown = sha(b"nobody has this")
    r = client.post("/v2/dst/blobs/uploads/", params={"mount": unknown, "from": "src"})
    assert r.status_code == 202 and "Location" in r.headers


def test_blob_ranges(client: httpx.Client) -> None:
    data = bytes(range(256)) * 40
    digest = push_blob(client, "ranges", data)
    url = f"/v2/ranges/blobs/{digest}"
    r = client.get(url, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert client.get(url, headers={"Range": "bytes=10000-"}).content == data[10000:]
    assert client.get(url, headers={"Range": "bytes=-5"}).content == data[-5:]
    bad = client.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert_error(bad, 416, "RANGE_INVALID")
    assert bad.headers["Content-Range"] == f"bytes */{len(data)}"
    for spec in ("bytes=5-2", "bytes=-0", f"bytes={10**30}-"):
        assert_error(client.get(url, headers={"Range": spec}), 416, "RANGE_INVALID")
    for spec in ("bytes=0-1,5-6", "items=0-1", "bytes=x-y"):  # ignored: the whole blob
        r = client.get(url, headers={"Range": spec})
        assert r.status_code == 200 and r.content == data
    r = client.get(url, headers={"Range": f"bytes=10-{10**30}"})
    assert r.status_code == 206 and r.content == data[10:]
    empty = push_blob(client, "ranges", b"")
    r = client.get(f"/v2/ranges/blobs/{empty}", headers={"Range": "bytes=0-"})
    assert r.status_code == 200 and r.content == b""


def test_blob_delete(client: httpx.Client) -> None:
    digest = push_blob(client, "del", b"to delete")
    assert client.delete(f"/v2/del/blobs/{digest}").status_code == 202
    assert_error(client.head(f"/v2/del/blobs/{digest}"), 404, "BLOB_UNKNOWN")


def image_manifest(c: httpx.Client, name: str, media_type: str = OCI_MANIFEST) -> bytes:
    config = push_blob(c, name, b'{"architecture":"amd64","os":"linux"}')
    layer = push_blob(c, name, os.urandom(1000))
    doc = {
        "schemaVersion": 2, "mediaType": media_type,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config, "size": 37},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer, "size": 1000}],
    }
    return json.dumps(doc).encode()


def test_manifest_by_tag_and_digest(client: httpx.Client) -> None:
    body = image_manifest(client, "img")
    r = client.put("/v2/img/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    digest = r.headers["Docker-Content-Digest"]
    assert digest == sha(body)
    for ref in ("v1", digest):
        got = client.get(f"/v2/img/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert got.status_code == 200 and got.content == body
        assert got.headers["Content-Type"] == OCI_MANIFEST
        assert got.headers["Docker-Content-Digest"] == digest
        head = client.head(f"/v2/img/manifests/{ref}")
        assert head.status_code == 200 and head.headers["Content-Length"] == str(len(body))
    refused = client.get("/v2/img/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert_error(refused, 404, "MANIFEST_UNKNOWN")
    r = client.put(f"/v2/img/manifests/{digest}", content=body,
                   headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201
    assert client.delete(f"/v2/img/manifests/{digest}").status_code == 202
    assert_error(client.get("/v2/img/manifests/v1"), 404, "MANIFEST_UNKNOWN")


def test_docker_manifest_and_index(client: httpx.Client) -> None:
    body = image_manifest(client, "multi", DOCKER_MANIFEST)
    r = client.put("/v2/multi/manifests/amd64", content=body,
                   headers={"Content-Type": DOCKER_MANIFEST})
    assert r.status_code == 201, r.text
    child = r.headers["Docker-Content-Digest"]
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "digest": child, "size": len(body),
         "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
    r = client.put("/v2/multi/manifests/latest", content=index,
                   headers={"Content-Type": OCI_INDEX})
    assert r.status_code == 201, r.text
    got = client.get("/v2/multi/manifests/latest", headers={"Accept": f"{OCI_INDEX}, */*;q=0.1"})
    assert got.headers["Content-Type"] == OCI_INDEX and got.content == index


def test_manifest_errors(client: httpx.Client) -> None:
    body = image_manifest(client, "bad")
    missing = json.loads(body)
    missing["layers"][0]["digest"] = sha(b"absent")
    r = client.put("/v2/bad/manifests/v1", content=json.dumps(missing).encode(),
                   headers={"Content-Type": OCI_MANIFEST})
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    r = client.put("/v2/bad/manifests/v1", content=b"{not json",
                   headers={"Content-Type": OCI_MANIFEST})
    assert_error(r, 400, "MANIFEST_INVALID")
    r = client.put(f"/v2/bad/manifests/{sha(b'x')}", content=body,
                   headers={"Content-Type": OCI_MANIFEST})
    assert_error(r, 400, "DIGEST_INVALID")
    r = client.put("/v2/bad/manifests/-bad-tag", content=body,
                   headers={"Content-Type": OCI_MANIFEST})
    assert_error(r, 400, "TAG_INVALID")
    assert_error(client.get("/v2/bad/manifests/nope"), 404, "MANIFEST_UNKNOWN")


def test_tags_and_catalog_pagination(client: httpx.Client) -> None:
    body = image_manifest(client, "pages/one")
    for tag in ("a", "b", "c", "d", "e"):
        r = client.put(f"/v2/pages/one/manifests/{tag}", content=body,
                       headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 201
    r = client.get("/v2/pages/one/tags/list", params={"n": 2})
    assert r.json() == {"name": "pages/one", "tags": ["a", "b"]}
    assert r.headers["Link"] == f'<{origin(client)}/v2/pages/one/tags/list?n=2&last=b>; rel="next"'
    r = client.get("/v2/pages/one/tags/list", params={"n": 2, "last": "d"})
    assert r.json()["tags"] == ["e"] and "Link" not in r.headers
    assert client.get("/v2/pages/one/tags/list").json()["tags"] == ["a", "b", "c", "d", "e"]
    for other in ("pages/two", "zzz"):  # the catalog lists repositories with manifests
        r = client.put(f"/v2/{other}/manifests/t", content=image_manifest(client, other),
                       headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 201
    r = client.get("/v2/_catalog", params={"n": 1})
    assert r.json() == {"repositories": ["pages/one"]}
    assert r.headers["Link"] == f'<{origin(client)}/v2/_catalog?n=1&last=pages%2Fone>; rel="next"'
    rest = client.get("/v2/_catalog", params={"n": 10, "last": "pages/one"})
    assert rest.json() == {"repositories": ["pages/two", "zzz"]}
    assert_error(client.get("/v2/_catalog", params={"n": "x"}), 400, "PAGINATION_NUMBER_INVALID")
    assert_error(client.get("/v2/nobody/tags/list"), 404, "NAME_UNKNOWN")


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("POST", "/v2/Upper/blobs/uploads/", 400, "NAME_INVALID"),
        ("GET", "/v2/a//b/blobs/sha256:" + "0" * 64, 400, "NAME_INVALID"),
        ("GET", "/v2/ok/blobs/sha256:xyz", 400, "DIGEST_INVALID"),
        ("GET", "/v2/ok/blobs/md5:abc", 400, "DIGEST_INVALID"),
        ("HEAD", "/v2/ok/blobs/sha256:" + "0" * 64, 404, "BLOB_UNKNOWN"),
        ("GET", "/v2/ok/blobs/sha256:" + "0" * 64, 404, "BLOB_UNKNOWN"),
        ("GET", "/v2/ok/manifests/sha256:" + "1" * 10, 400, "DIGEST_INVALID"),
        ("GET", "/v2/ok/blobs/uploads/not-an-upload", 400, "BLOB_UPLOAD_INVALID"),
        ("POST", "/v2/ok/blobs/uploads/?digest=sha256:short", 400, "DIGEST_INVALID"),
        ("PATCH", "/v2/ok/blobs/sha256:" + "0" * 64, 405, "UNSUPPORTED"),
        ("GET", "/v2/ok/nothing-here", 404, "NAME_UNKNOWN"),
        ("GET", "/v2/ok/tags/list?n=-1", 400, "PAGINATION_NUMBER_INVALID"),
    ],
)
def test_bad_input_gets_its_oci_code(
    client: httpx.Client, method: str, path: str, status: int, code: str
) -> None:
    assert_error(client.request(method, path), status, code)


def test_bad_upload_ids_and_ranges(client: httpx.Client) -> None:
    loc = start_upload(client, "ids")
    token = parse_qs(urlsplit(loc).query)["_state"][0]
    r = client.patch(loc, content=b"abc", headers={"Content-Range": "nonsense"})
    assert_error(r, 416, "RANGE_INVALID")
    r = client.patch(loc, content=b"abc", headers={"Content-Range": "0-9"})  # length mismatch
    assert_error(r, 416, "RANGE_INVALID")
    r = client.put(loc)  # no digest
    assert_error(r, 400, "DIGEST_INVALID")
    r = client.put(with_query(loc, digest="sha256:nothex"))
    assert_error(r, 400, "DIGEST_INVALID")
    r = client.get(f"/v2/ids/blobs/uploads/..%2F..?_state={quote(token, safe='')}")
    assert r.status_code in (400, 404) and r.status_code != 500


def test_bad_digest_is_refused_before_the_body_lands(any_backend: Backend) -> None:
    driver = any_backend.make()
    with ThreadedServer(make_config(any_backend), driver) as srv, \
            httpx.Client(base_url=srv.url, timeout=60) as c:
        loc = c.patch(start_upload(c, "early"), content=b"abc").headers["Location"]
        for digest in ("md5:abc", "sha256:nothex", "sha384:" + "a" * 96):
            r = c.put(with_query(loc, digest=digest), content=b"more")
            assert_error(r, 400, "DIGEST_INVALID")
            assert c.get(loc).headers["Range"] == "0-2"  # nothing appended
            r = c.post("/v2/early/blobs/uploads/", params={"digest": digest}, content=b"x")
            assert_error(r, 400, "DIGEST_INVALID")
        uploads = {i.path.split("/_uploads/")[1].split("/")[0]
                   for i in driver.walk("/") if "/_uploads/" in i.path and "/_uploads/" != i.path}
        assert len(uploads) == 1  # the monolithic POSTs left no upload behind


def test_manifest_put_edge_cases(client: httpx.Client) -> None:
    doc = json.loads(image_manifest(client, "edge"))
    del doc["mediaType"]  # optional for OCI: the structure says what it is
    body = json.dumps(doc).encode()
    r = client.put("/v2/edge/manifests/v1", content=body)  # no Content-Type either
    assert r.status_code == 201, r.text
    assert client.get("/v2/edge/manifests/v1").headers["Content-Type"] == OCI_MANIFEST
    r = client.put("/v2/edge/manifests/sha256:xyz", content=body,
                   headers={"Content-Type": OCI_MANIFEST})
    assert_error(r, 400, "DIGEST_INVALID")
    assert "invalid digest" in r.json()["errors"][0]["message"]
    r = client.put("/v2/edge/manifests/big", content=b" " * (5 * 2**20),
                   headers={"Content-Type": OCI_MANIFEST})
    assert_error(r, 413, "MANIFEST_INVALID")
    r = client.put("/v2/edge/manifests/v2", content=b"[1]", headers={"Content-Type": OCI_MANIFEST})
    assert_error(r, 400, "MANIFEST_INVALID")


def test_deletes_disabled(any_backend: Backend) -> None:
    config = make_config(any_backend, delete_enabled=False)
    with ThreadedServer(config, any_backend.make()) as srv, httpx.Client(base_url=srv.url) as c:
        digest = push_blob(c, "keep", b"kept")
        assert_error(c.delete(f"/v2/keep/blobs/{digest}"), 405, "UNSUPPORTED")
        assert_error(c.delete(f"/v2/keep/manifests/{digest}"), 405, "UNSUPPORTED")
        assert c.head(f"/v2/keep/blobs/{digest}").status_code == 200


def test_chunk_min_length_is_the_drivers_part_size(any_backend: Backend) -> None:
    driver = any_backend.make()
    config = make_config(any_backend)
    with ThreadedServer(config, driver) as srv, httpx.Client(base_url=srv.url) as c:
        r = c.post("/v2/chunks/blobs/uploads/")
        assert r.status_code == 202, r.text
        expected = driver.preferred_chunk_size
        advertised = int(r.headers["OCI-Chunk-Min-Length"])
        assert advertised == expected if expected is not None else advertised > 0
