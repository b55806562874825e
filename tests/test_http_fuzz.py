"""Property-based fuzzing of the HTTP API (Hypothesis) over the filesystem driver.

Requests are drawn from the API's grammar and just outside it: methods, repository names,
references, digests, ranges, headers, bodies and upload state tokens, valid ones mixed with
near misses (unicode digits, traversal, huge numbers, truncated tokens). For each: no 5xx, no file
appears outside the storage root, and every blob answered 201 hashes to its digest on disk.
Bounded: a fixed number of examples, derandomized, no deadline (a loaded machine is slow).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layerstore_core.server import Config
from layerstore_core.server.config import PurgeConfig
from layerstore_core.server.threaded import ThreadedServer

EXAMPLES = 300


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


components = st.from_regex(r"\A[a-z0-9]+(?:[._-][a-z0-9]+)?\Z")
names = st.one_of(
    st.lists(components, min_size=1, max_size=3).map("/".join),
    st.sampled_from(["..", "a/../b", "a/./b", "%2e%2e", "A", "a//b", "_uploads", "a/_layers",
                     "-a", "a" * 300, "ü", "a\\b"]),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=20).map(
        lambda t: quote(t, safe="/")),
)
bodies = st.one_of(st.binary(max_size=2048), st.just(b""), st.sampled_from([
    b'{"schemaVersion":2}', b"[" * 2000, b'{"schemaVersion":2,"layers":[{"digest":"x"}]}',
    b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
    b'"config":{"digest":"sha256:' + b"0" * 64 + b'","size":1},"layers":[]}',
]))
digests = st.one_of(
    st.from_regex(r"\Asha256:[0-9a-f]{64}\Z"),
    st.sampled_from(["sha256:", "sha512:" + "0" * 128, "md5:abc", "sha256:" + "0" * 63,
                     "sha256:" + "A" * 64, "sha256:../../x", "sha256:" + "٣" * 64]),
    st.text(max_size=80).map(lambda t: quote(t, safe="")),
)
numbers = st.one_of(
    st.sampled_from(["", "-1", "²", "٣", "9" * 40, "9" * 5000, "0x10", " 1", "1.5"]),
    st.integers(0, 10**6).map(str),
)
ranges = st.one_of(
    st.tuples(numbers, numbers).map(lambda t: f"bytes={t[0]}-{t[1]}"),
    st.tuples(numbers, numbers).map(lambda t: f"{t[0]}-{t[1]}"),
    st.text(st.characters(max_codepoint=255, exclude_categories=["Cc"]), max_size=40),
)
methods = st.sampled_from(["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "TRACE"])
references = st.one_of(st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9._-]{0,20}\Z"), digests)


#: A blob pushed before fuzzing, so ranges and mounts meet real content.
KNOWN = b"0123456789abcdef" * 64
KNOWN_DIGEST = sha(KNOWN)
#: Each route's own methods, drawn most of the time (any method the rest).
NATURAL = {
    "version": ["GET", "HEAD"], "catalog": ["GET"], "tags": ["GET"],
    "manifest": ["GET", "HEAD", "PUT", "DELETE"], "blob": ["GET", "HEAD", "DELETE"],
    "known": ["GET", "HEAD"], "start": ["POST"], "monolithic": ["POST"],
    "session": ["PATCH", "PUT", "GET", "DELETE"],
}


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], dict[str, bytes], bytes]:
    """One request: method, path, query, headers, body; ``{upload}`` is a live session."""
    name = draw(names)
    route = draw(st.sampled_from(sorted(NATURAL)))
    path = {
        "version": "/v2/", "catalog": "/v2/_catalog", "tags": f"/v2/{name}/tags/list",
        "manifest": f"/v2/{name}/manifests/{draw(references)}",
        "blob": f"/v2/{name}/blobs/{draw(digests)}", "start": f"/v2/{name}/blobs/uploads/",
        "known": f"/v2/fuzz/blobs/{KNOWN_DIGEST}",
        "monolithic": f"/v2/{name}/blobs/uploads/", "session": "{upload}",
    }[route]
    body = draw(bodies)
    query: dict[str, str] = {}
    if route in ("catalog", "tags"):
        query = draw(st.fixed_dictionaries({}, optional={"n": numbers, "last": names}))
    elif route in ("monolithic", "session"):
        query["digest"] = sha(body) if draw(st.booleans()) else draw(digests)
    elif route == "start" and draw(st.booleans()):
        query = {"mount": draw(st.sampled_from([KNOWN_DIGEST])) if draw(st.booleans())
                 else draw(digests), "from": draw(st.sampled_from(["fuzz"]) | names)}
    headers: dict[str, bytes] = {}
    for header, values in (("range", ranges), ("content-range", ranges),
                           ("content-type", st.sampled_from([
                               "application/vnd.oci.image.manifest.v1+json",
                               "application/vnd.docker.distribution.manifest.v2+json",
                               "text/plain", ""])),
                           ("accept", st.sampled_from(["*/*", "text/html", ""]))):
        if draw(st.booleans()):
            headers[header] = draw(values).strip(" \t").encode("utf-8")
    natural = draw(st.integers(0, 4)) > 0
    method = draw(st.sampled_from(NATURAL[route]) if natural else methods)
    return method, path, query, headers, body if method in ("PUT", "POST", "PATCH") else b""


def state_token(location: str, how: str) -> str:
    """The session URL with its ``_state`` kept, cut short, replaced or dropped."""
    base, _, state = location.partition("?_state=")
    if how == "valid":
        return location
    if how == "truncated":
        return f"{base}?_state={state[: len(state) // 2]}"
    if how == "garbage":
        return f"{base}?_state={quote('x' * 40 + '.' + 'y' * 43)}"
    return base


def blob_files(root: Path) -> dict[str, Path]:
    blobs = root / "docker/registry/v2/blobs/sha256"
    return {f"sha256:{p.parent.name}": p for p in blobs.glob("*/*/data")}


def test_fuzz_http_api(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    config = Config(driver="filesystem", driver_params={"rootdirectory": str(root)},
                    secret="fuzz", purge=PurgeConfig(enabled=False), redirect_disabled=True,
                    delete_enabled=True)
    seen_201: set[str] = set()
    with ThreadedServer(config) as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        pushed = client.post("/v2/fuzz/blobs/uploads/", params={"digest": KNOWN_DIGEST},
                             content=KNOWN)
        assert pushed.status_code == 201, pushed.text

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(requests(), st.sampled_from(["valid", "truncated", "garbage", "none"]))
        def probe(request: tuple[str, str, dict[str, str], dict[str, bytes], bytes],
                  token: str) -> None:
            method, path, query, headers, body = request
            if path == "{upload}":
                started = client.post("/v2/fuzz/blobs/uploads/")
                assert started.status_code == 202, started.text
                path = state_token(started.headers["Location"], token)
            r = client.request(method, path, params=query or None, headers=headers,
                               content=body)
            assert r.status_code < 500, (method, path, query, headers, r.status_code, r.text)
            if r.status_code == 201 and "/blobs/" in path:
                seen_201.add(r.headers["Docker-Content-Digest"])
            assert sorted(p.name for p in tmp_path.iterdir()) == ["outside", "root"]
            assert list(outside.iterdir()) == []

        probe()
    stored = blob_files(root)
    for digest in seen_201:
        assert sha(stored[digest].read_bytes()) == digest
