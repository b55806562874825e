"""Real clients through token auth: skopeo (every backend), podman, and the oras SDK (referrers).

``layerstore serve`` runs as a subprocess with ``auth.token`` trusting the test PKI; the test
token server (tests/tokenserver.py) issues tokens to ``alice`` (pull, push, delete everywhere)
and ``bob`` (pull only). Clients log in with ``--creds`` and follow the Bearer challenge.

podman runs as root without extra setup given its own store: ``--root``/``--runroot`` in a
temporary directory, ``--storage-driver vfs`` (no overlay mount needed), ``--tls-verify=false``
for the plain-HTTP registry, and ``CONTAINERS_CONF``/``REGISTRIES_CONFIG_PATH`` pointed at empty
files so no host configuration is read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from layerstore_core.testing import Backend
from tests.backends._servers import free_port
from tests.images import (
    ImageLayout,
    RegistryProcess,
    build_oci_layout,
    read_oci_layout,
    skopeo,
    write_config,
    write_policy,
)
from tests.tokenserver import PKI, TokenServer, User

USERS = {
    "alice": User("alice-pw", {"*": ("pull", "push", "delete")}),
    "bob": User("bob-pw", {"*": ("pull",)}),
}
ALICE, BOB = "alice:alice-pw", "bob:bob-pw"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SBOM, SIGNATURE = "application/vnd.example.sbom.v1", "application/vnd.example.signature.v1"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def small_image(tmp_path_factory: pytest.TempPathFactory) -> ImageLayout:
    assert shutil.which("skopeo"), "skopeo is required (apt-get install skopeo)"
    return build_oci_layout(tmp_path_factory.mktemp("img") / "layout", (4096, 300_000), tag="v1",
                            seed=7)


@pytest.fixture(scope="module")
def tokens(pki: PKI) -> Iterator[TokenServer]:
    with TokenServer(pki.chain_signer, USERS).running() as server:
        yield server


def serve(backend: Backend, pki: PKI, tokens: TokenServer, tmp: Path) -> RegistryProcess:
    port = free_port()
    config = write_config(tmp / "config.yml", backend.driver, backend.params, port,
                          extra={"auth": {"token": pki.auth_config(tokens.realm)}})
    return RegistryProcess.layerstore(config, port, tmp / "server.log")


def test_skopeo_through_token_auth(shared_backend: Backend, pki: PKI, tokens: TokenServer,
                                   small_image: ImageLayout, tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "policy.json")
    with serve(shared_backend, pki, tokens, tmp_path) as srv:
        host = srv.url.removeprefix("http://")
        src = f"oci:{small_image.path}:v1"
        anon = skopeo("copy", "--dest-tls-verify=false", src, f"docker://{host}/team/app:v1",
                      policy=policy)
        assert anon.returncode != 0
        push = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", ALICE, src,
                      f"docker://{host}/team/app:v1", policy=policy)
        assert push.returncode == 0, push.stderr
        out = tmp_path / "pulled"
        pull = skopeo("copy", "--src-tls-verify=false", "--src-creds", BOB,
                      f"docker://{host}/team/app:v1", f"oci:{out}:v1", policy=policy)
        assert pull.returncode == 0, pull.stderr
        assert read_oci_layout(out, "v1") == (small_image.manifest_digest,
                                              small_image.blob_digests)
        # bob may pull but not push or delete.
        denied = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", BOB, src,
                        f"docker://{host}/team/bob:v1", policy=policy)
        assert denied.returncode != 0
        assert "denied" in denied.stderr.lower() or "unauthorized" in denied.stderr.lower()
        gone = skopeo("delete", "--tls-verify=false", "--creds", BOB,
                      f"docker://{host}/team/app:v1", policy=policy)
        assert gone.returncode != 0
        inspect = skopeo("inspect", "--tls-verify=false", "--creds", BOB, "--raw",
                         f"docker://{host}/team/app:v1", policy=policy)
        assert inspect.returncode == 0, inspect.stderr
        r = httpx.get(f"{srv.url}/v2/team/bob/tags/list")
        assert r.status_code == 401 and "insufficient_scope" not in r.headers["WWW-Authenticate"]
        assert tokens.issued.get("bob", 0) >= 3
        _referrers_over_http(srv.url, tokens, small_image.manifest_digest)


def _referrers_over_http(url: str, tokens: TokenServer, subject: str) -> None:
    """Attach two artifacts to the pushed image, list, filter, delete one, list (any backend)."""
    scope = "repository:team/app:pull,push,delete"
    r = httpx.get(tokens.realm, auth=("alice", "alice-pw"),
                  params={"service": "layerstore-test", "scope": scope})
    auth = {"Authorization": f"Bearer {r.json()['token']}"}
    with httpx.Client(base_url=url, headers=auth, timeout=60) as c:
        size = len(c.get(f"/v2/team/app/manifests/{subject}").content)
        empty = b"{}"
        r = c.post("/v2/team/app/blobs/uploads/", params={"digest": sha(empty)}, content=empty)
        assert r.status_code == 201, r.text
        made = {}
        for artifact_type in (SBOM, SIGNATURE):
            body = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                           "digest": sha(empty), "size": 2},
                "layers": [{"mediaType": "application/vnd.oci.empty.v1+json",
                            "digest": sha(empty), "size": 2}],
                "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": size},
            }).encode()
            r = c.put(f"/v2/team/app/manifests/{sha(body)}", content=body,
                      headers={"Content-Type": OCI_MANIFEST})
            assert r.status_code == 201 and r.headers["OCI-Subject"] == subject, r.text
            made[artifact_type] = sha(body)
        listed = c.get(f"/v2/team/app/referrers/{subject}").json()["manifests"]
        assert {d["digest"]: d["artifactType"] for d in listed} == {
            d: t for t, d in made.items()}
        only = c.get(f"/v2/team/app/referrers/{subject}", params={"artifactType": SBOM})
        assert [d["digest"] for d in only.json()["manifests"]] == [made[SBOM]]
        assert c.delete(f"/v2/team/app/manifests/{made[SBOM]}").status_code == 202
        after = c.get(f"/v2/team/app/referrers/{subject}").json()["manifests"]
        assert [d["digest"] for d in after] == [made[SIGNATURE]]


def _podman(store: Path, run: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (store / "containers.conf").touch()
    (store / "registries.conf").touch()
    env = {**os.environ, "CONTAINERS_CONF": str(store / "containers.conf"),
           "REGISTRIES_CONFIG_PATH": str(store / "registries.conf")}
    argv = ["podman", "--root", str(store / "root"), "--runroot", str(run),
            "--storage-driver", "vfs", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env,
                          check=False)


def test_podman_through_token_auth(backend_filesystem: Backend, pki: PKI, tokens: TokenServer,
                                   small_image: ImageLayout, tmp_path: Path) -> None:
    assert shutil.which("podman"), "podman is required (apt-get install podman)"
    write_policy(tmp_path / "policy.json")
    store = tmp_path / "podman"
    store.mkdir()
    run = Path(tempfile.mkdtemp(prefix="lsp-"))  # podman wants a --runroot under 50 characters
    try:
        _podman_round_trip(backend_filesystem, pki, tokens, small_image, tmp_path, store, run)
    finally:
        shutil.rmtree(run, ignore_errors=True)


def _podman_round_trip(backend: Backend, pki: PKI, tokens: TokenServer, small_image: ImageLayout,
                       tmp_path: Path, store: Path, run: Path) -> None:
    policy = tmp_path / "policy.json"
    with serve(backend, pki, tokens, tmp_path) as srv:
        host = srv.url.removeprefix("http://")
        seed = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", ALICE,
                      f"oci:{small_image.path}:v1", f"docker://{host}/team/app:v1", policy=policy)
        assert seed.returncode == 0, seed.stderr
        pull = _podman(store, run, "pull", "--tls-verify=false", "--creds", BOB,
                       f"{host}/team/app:v1")
        assert pull.returncode == 0, pull.stderr
        push = _podman(store, run, "push", "--tls-verify=false", "--creds", ALICE,
                       f"{host}/team/app:v1", f"docker://{host}/team/podman:v1")
        assert push.returncode == 0, push.stderr
        denied = _podman(store, run, "push", "--tls-verify=false", "--creds", BOB,
                         f"{host}/team/app:v1", f"docker://{host}/team/bob:v1")
        assert denied.returncode != 0
        assert "denied" in denied.stderr.lower() or "unauthorized" in denied.stderr.lower()
        tags = skopeo("list-tags", "--tls-verify=false", "--creds", BOB,
                      f"docker://{host}/team/podman", policy=policy)
        assert tags.returncode == 0 and json.loads(tags.stdout)["Tags"] == ["v1"]


def test_oras_referrers_through_token_auth(backend_filesystem: Backend, pki: PKI,
                                           tokens: TokenServer, small_image: ImageLayout,
                                           tmp_path: Path) -> None:
    """Attach two artifacts to an image with the oras SDK, list, filter, delete one, list.

    One client does it all: oras-py keeps its first token (pull) and asks for a new one only
    after a 403, which is why a missing scope is 403 ``insufficient_scope`` (RFC 6750) here.
    """
    import oras.client
    import oras.oci

    policy = write_policy(tmp_path / "policy.json")
    with serve(backend_filesystem, pki, tokens, tmp_path) as srv:
        host = srv.url.removeprefix("http://")
        seed = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", ALICE,
                      f"oci:{small_image.path}:v1", f"docker://{host}/team/app:v1", policy=policy)
        assert seed.returncode == 0, seed.stderr
        client = oras.client.OrasClient(hostname=host, insecure=True)
        client.login(username="alice", password="alice-pw", hostname=host, tls_verify=False)
        image = client.do_request(f"http://{host}/v2/team/app/manifests/v1",
                                         headers={"Accept": OCI_MANIFEST})
        assert image.status_code == 200
        subject = oras.oci.Subject(OCI_MANIFEST, image.headers["Docker-Content-Digest"],
                                   len(image.content))
        pushed = {}
        for kind, artifact_type in (("sbom", SBOM), ("sig", SIGNATURE)):
            payload = tmp_path / f"{kind}.json"
            payload.write_text(json.dumps({"kind": kind}))
            config = tmp_path / f"{kind}-config.json"
            config.write_text("{}")
            r = client.push(target=f"{host}/team/app:{kind}", subject=subject,
                            files=[f"{payload}:application/json"],
                            manifest_config=f"{config}:{artifact_type}",
                            disable_path_validation=True, quiet=True)
            assert r.status_code == 201 and r.headers["OCI-Subject"] == subject.digest
            pushed[artifact_type] = r.headers["Docker-Content-Digest"]
        url = f"http://{host}/v2/team/app/referrers/{subject.digest}"
        listed = client.do_request(url).json()["manifests"]
        assert sorted((d["artifactType"], d["digest"]) for d in listed) == sorted(
            (t, d) for t, d in pushed.items())
        only = client.do_request(f"{url}?artifactType={SIGNATURE}")
        assert only.headers["OCI-Filters-Applied"] == "artifactType"
        assert [d["digest"] for d in only.json()["manifests"]] == [pushed[SIGNATURE]]
        gone = client.do_request(
            f"http://{host}/v2/team/app/manifests/{pushed[SBOM]}", "DELETE")
        assert gone.status_code == 202
        after = client.do_request(url).json()["manifests"]
        assert [d["digest"] for d in after] == [pushed[SIGNATURE]]
