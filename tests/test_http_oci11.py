"""OCI distribution-spec 1.1: referrers, ``OCI-Subject``, ``?tag=``, 404 for unknown tags.

The requests are those of the OCI conformance suite (v1.1.1) that layerstore failed: "HEAD/GET
nonexistent manifest" (``.INVALID_MANIFEST_NAME``), "References setup" (``OCI-Subject`` on
each referrer PUT, referrers pushed before and after their subject, one whose subject does not
exist) and the four "listing references" specs — with the same artifacts and expectations.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from layerstore_core.registry import paths as p
from layerstore_core.server import Config
from layerstore_core.server.config import PurgeConfig
from layerstore_core.server.threaded import ThreadedServer
from tests.backends._servers import free_port
from tests.images import RegistryProcess, write_config

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY_JSON = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
TYPE_A = "application/vnd.nhl.peanut.butter.bagel"
TYPE_B = "application/vnd.nhl.peanut.butter.bagel.b"
TYPE_INDEX = "application/vnd.food.stand"
ANNOTATION = "org.opencontainers.conformance.test"
REPO = "conformance/referrers"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def desc(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha(data), "size": len(data)}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def client(root: Path) -> Iterator[httpx.Client]:
    config = Config(driver="filesystem", driver_params={"rootdirectory": str(root)},
                    delete_enabled=True, secret="s", purge=PurgeConfig(enabled=False))
    with ThreadedServer(config) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        yield c


def push_blob(c: httpx.Client, name: str, data: bytes) -> dict[str, Any]:
    """POST then PUT with the digest, as the conformance setup does."""
    r = c.post(f"/v2/{name}/blobs/uploads/")
    assert r.status_code == 202, r.text
    location = r.headers["Location"]
    location += ("&" if "?" in location else "?") + f"digest={sha(data)}"
    r = c.put(location, content=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return desc("application/octet-stream", data)


def put_manifest(c: httpx.Client, name: str, ref: str, doc: dict[str, Any],
                 media_type: str = OCI_MANIFEST, **params: Any) -> httpx.Response:
    body = json.dumps(doc).encode()
    r = c.put(f"/v2/{name}/manifests/{ref}", content=body, params=params,
              headers={"Content-Type": media_type})
    assert r.status_code == 201, r.text
    return r


def image(c: httpx.Client, name: str, seed: bytes) -> bytes:
    config = push_blob(c, name, b'{"architecture":"amd64","os":"linux","seed":"%s"}' % seed)
    layer = push_blob(c, name, b"layer " + seed)
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {**config, "mediaType": "application/vnd.oci.image.config.v1+json"},
        "layers": [{**layer, "mediaType": "application/vnd.oci.image.layer.v1.tar"}],
    }).encode()


def artifact(subject: bytes, blob: bytes, artifact_type: str, in_config: bool,
             note: str) -> dict[str, Any]:
    """A referrer: its type either as ``config.mediaType`` or as ``artifactType``."""
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "subject": desc(OCI_MANIFEST, subject),
                           "annotations": {ANNOTATION: note}}
    if in_config:
        doc["config"] = desc(artifact_type, blob)
        doc["layers"] = [desc("application/vnd.oci.image.layer.v1.tar", EMPTY_JSON)]
    else:
        doc["artifactType"] = artifact_type
        doc["config"] = desc("application/vnd.oci.empty.v1+json", EMPTY_JSON)
        doc["layers"] = [desc("application/vnd.oci.image.layer.v1.tar", blob)]
    return doc


def referrers(c: httpx.Client, subject: str, **params: str) -> httpx.Response:
    r = c.get(f"/v2/{REPO}/referrers/{subject}", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == OCI_INDEX
    return r


def test_nonexistent_manifest_is_404_even_for_a_tag_the_grammar_rejects(
    client: httpx.Client,
) -> None:
    body = image(client, "conformance/pull", b"pull")
    put_manifest(client, "conformance/pull", "tagtest0", json.loads(body))
    for name in ("conformance/pull", "never/pushed"):
        for ref in (".INVALID_MANIFEST_NAME", "-bad", "missing", "a" * 200):
            r = client.head(f"/v2/{name}/manifests/{ref}")
            assert r.status_code == 404, (name, ref)
            r = client.get(f"/v2/{name}/manifests/{ref}")
            assert r.status_code == 404, (name, ref)
            assert r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    r = client.delete("/v2/conformance/pull/manifests/.INVALID_MANIFEST_NAME")
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    r = client.put("/v2/conformance/pull/manifests/.INVALID_MANIFEST_NAME", content=body,
                   headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "TAG_INVALID"


def test_put_by_digest_with_tag_parameters(client: httpx.Client) -> None:
    name = "conformance/tagparam"
    body = image(client, name, b"tags")
    bad = client.put(f"/v2/{name}/manifests/{sha(body)}", content=body,
                     params=[("tag", "ok"), ("tag", ".bad")],
                     headers={"Content-Type": OCI_MANIFEST})
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == "TAG_INVALID"
    assert client.head(f"/v2/{name}/manifests/{sha(body)}").status_code == 404  # nothing stored
    r = client.put(f"/v2/{name}/manifests/{sha(body)}", content=body,
                   params=[("tag", "a"), ("tag", "b"), ("tag", "a")],
                   headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == sha(body)
    assert r.headers.get_list("OCI-Tag") == ["a", "b"]
    assert "OCI-Subject" not in r.headers
    assert client.get(f"/v2/{name}/tags/list").json()["tags"] == ["a", "b"]
    for tag in ("a", "b"):
        assert client.get(f"/v2/{name}/manifests/{tag}").content == body


def _references_setup(c: httpx.Client) -> dict[str, Any]:
    """The conformance suite's "References setup", checking ``OCI-Subject`` on every PUT."""
    subject = image(c, REPO, b"subject")
    missing_subject = image(c, "conformance/elsewhere", b"never here")
    blob_a, blob_b = b"reference blob A", b"reference blob B"
    assert push_blob(c, REPO, EMPTY_JSON)["digest"] == EMPTY_DIGEST
    push_blob(c, REPO, blob_a)
    made: dict[str, Any] = {"subject": sha(subject), "missing": sha(missing_subject), "notes": {}}

    def refer(doc: dict[str, Any], media_type: str = OCI_MANIFEST) -> str:
        body = json.dumps(doc).encode()
        r = put_manifest(c, REPO, sha(body), doc, media_type)
        assert r.headers["OCI-Subject"] == doc["subject"]["digest"]
        made["notes"][sha(body)] = doc["annotations"][ANNOTATION]
        return sha(body)

    # Referrers pushed before their subject exists ...
    a_config = refer(artifact(subject, blob_a, TYPE_A, True, "A config"))
    a_layer = refer(artifact(subject, blob_a, TYPE_A, False, "A layer"))
    sizes = {d: len(c.get(f"/v2/{REPO}/manifests/{d}").content) for d in (a_config, a_layer)}
    made["index"] = refer({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": TYPE_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": sizes[d]}
                      for d in (a_config, a_layer)],
        "subject": desc(OCI_MANIFEST, subject), "annotations": {ANNOTATION: "index"},
    }, OCI_INDEX)
    # ... then the subject, then referrers after it, and one to a subject that is not here.
    put_manifest(c, REPO, "tagtest0", json.loads(subject))
    push_blob(c, REPO, blob_b)
    refer(artifact(subject, blob_b, TYPE_B, True, "B config"))
    made["b_layer"] = refer(artifact(subject, blob_b, TYPE_B, False, "B layer"))
    made["c_layer"] = refer(artifact(missing_subject, blob_b, TYPE_B, False, "C layer"))
    made["a"] = sorted([a_config, a_layer])
    return made


def test_conformance_referrers_listing(client: httpx.Client, root: Path) -> None:
    made = _references_setup(client)
    # "GET request to nonexistent blob should result in empty 200 response"
    empty = referrers(client, sha(b"dummy")).json()
    assert empty == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    assert referrers(client, sha(b"dummy")).json() == empty
    never = client.get(f"/v2/never/pushed/referrers/{sha(b'dummy')}")
    assert never.status_code == 200 and never.json()["manifests"] == []
    # "GET request to existing blob should yield 200"
    listed = referrers(client, made["subject"]).json()["manifests"]
    assert len(listed) == 5 and len({d["digest"] for d in listed}) == 5
    for d in listed:
        assert d["annotations"] == {ANNOTATION: made["notes"][d["digest"]]}
        assert d["size"] == len(client.get(f"/v2/{REPO}/manifests/{d['digest']}").content)
        assert d["mediaType"] == (OCI_INDEX if d["digest"] == made["index"] else OCI_MANIFEST)
    types = sorted(d["artifactType"] for d in listed)
    assert types == sorted([TYPE_A, TYPE_A, TYPE_B, TYPE_B, TYPE_INDEX])
    # "GET request to existing blob with filter should yield 200"
    r = referrers(client, made["subject"], artifactType=TYPE_A)
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    assert sorted(d["digest"] for d in r.json()["manifests"]) == made["a"]
    assert "OCI-Filters-Applied" not in referrers(client, made["subject"]).headers
    # "GET request to missing manifest should yield 200"
    only = referrers(client, made["missing"]).json()["manifests"]
    assert [d["digest"] for d in only] == [made["c_layer"]]
    # The index is in storage, one link per referrer, beside Distribution's layout.
    link = root / p.path_for(p.ReferrerLinkPath(REPO, made["subject"], made["b_layer"]))[1:]
    assert link.read_text() == made["b_layer"]


def test_referrers_pagination_and_delete(client: httpx.Client, root: Path) -> None:
    made = _references_setup(client)
    everything = [d["digest"] for d in referrers(client, made["subject"]).json()["manifests"]]
    assert everything == sorted(everything)
    pages, url = [], f"/v2/{REPO}/referrers/{made['subject']}?n=2"
    while url:
        r = client.get(url)
        assert r.status_code == 200
        pages.append([d["digest"] for d in r.json()["manifests"]])
        link = r.headers.get("Link")
        url = link[1:link.index(">")] if link else ""
    assert [len(page) for page in pages] == [2, 2, 1]
    assert sum(pages, []) == everything
    r = referrers(client, made["subject"], artifactType=TYPE_B, n="1")
    assert "artifactType=application%2Fvnd.nhl.peanut.butter.bagel.b" in r.headers["Link"]
    assert client.get(f"/v2/{REPO}/referrers/sha256:short").status_code == 400
    # Delete one referrer: it leaves the listing and its index entry leaves storage.
    assert client.delete(f"/v2/{REPO}/manifests/{made['b_layer']}").status_code == 202
    after = [d["digest"] for d in referrers(client, made["subject"]).json()["manifests"]]
    assert after == [d for d in everything if d != made["b_layer"]]
    entry = root / p.path_for(p.ReferrerLinkPath(REPO, made["subject"], made["b_layer"]))[1:]
    assert not entry.parent.exists()
    # Deleting the subject leaves its referrers listed (the spec keeps them; GC decides).
    assert client.delete(f"/v2/{REPO}/manifests/{made['subject']}").status_code == 202
    assert len(referrers(client, made["subject"]).json()["manifests"]) == 4


def test_distribution_serves_a_store_with_referrers(client: httpx.Client, root: Path,
                                                    tmp_path: Path) -> None:
    """Distribution 2.8.2 (Debian's docker-registry) serves the store, ignoring ``_referrers``;
    a referrer it deletes is no longer listed by us (the stale entry is skipped)."""
    assert shutil.which("docker-registry"), "apt-get install docker-registry"
    made = _references_setup(client)
    port = free_port()
    config = write_config(tmp_path / "distribution.yml", "filesystem",
                          {"rootdirectory": str(root)}, port)
    with RegistryProcess(["docker-registry", "serve", str(config)], port,
                         tmp_path / "distribution.log") as dist:
        with httpx.Client(base_url=dist.url, timeout=60) as d:
            repos = d.get("/v2/_catalog").json()["repositories"]
            assert repos == ["conformance/elsewhere", REPO]
            assert d.get(f"/v2/{REPO}/tags/list").json()["tags"] == ["tagtest0"]
            for digest in (made["subject"], made["index"], made["b_layer"]):
                ours = client.get(f"/v2/{REPO}/manifests/{digest}",
                                  headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
                theirs = d.get(f"/v2/{REPO}/manifests/{digest}",
                               headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
                assert theirs.status_code == 200 and theirs.content == ours.content
            assert d.delete(f"/v2/{REPO}/manifests/{made['b_layer']}").status_code == 202
    listed = [x["digest"] for x in referrers(client, made["subject"]).json()["manifests"]]
    assert len(listed) == 4 and made["b_layer"] not in listed
