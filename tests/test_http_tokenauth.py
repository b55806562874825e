"""Token authentication (``auth.token``): challenges, per-repository scopes, forged tokens."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.server import Config
from layerstore_core.server.access import Scope, ScopeError, parse_scope, parse_scopes
from layerstore_core.server.app import create_app
from layerstore_core.server.config import ConfigError, PurgeConfig, parse_config
from layerstore_core.server.threaded import ThreadedServer
from layerstore_core.server.urls import URLConfig
from tests.tokenserver import PKI, Signer, TokenServer, User, claims, der_b64, make_cert

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REPO, OTHER = "team/app", "team/other"
USERS = {
    "alice": User("alice-pw", {REPO: ("pull", "push", "delete"), OTHER: ("pull", "push"),
                               "registry:catalog": ("*",)}),
    "bob": User("bob-pw", {REPO: ("pull",)}),
    "carol": User("carol-pw", {OTHER: ("pull", "push")}),
}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI.create(tmp_path_factory.mktemp("pki"))


def token_config(pki: PKI, realm: str = "http://auth.invalid/token", **extra: Any) -> Config:
    raw = {"storage": {"inmemory": {}}, "http": {"secret": "s"},
           "auth": {"token": {**pki.auth_config(realm), **extra}}}
    return Config(**{**parse_config(raw).__dict__, "purge": PurgeConfig(enabled=False)})


@pytest.fixture
def tokens(pki: PKI) -> Iterator[TokenServer]:
    with TokenServer(pki.root_signer, USERS).running() as server:
        yield server


@pytest.fixture
def client(pki: PKI, tokens: TokenServer) -> Iterator[httpx.Client]:
    with ThreadedServer(token_config(pki, tokens.realm), InMemoryDriver()) as srv:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            yield c


def challenge_of(r: httpx.Response) -> dict[str, str]:
    """The Bearer challenge's parameters; 401 without a valid token, 403 for a missing scope."""
    insufficient = "insufficient_scope" in r.headers.get("WWW-Authenticate", "")
    assert r.status_code == (403 if insufficient else 401), r.text
    kind, _, params = r.headers["WWW-Authenticate"].partition(" ")
    assert kind == "Bearer"
    out = {}
    for part in params.split('",'):
        key, _, value = part.partition("=")
        out[key] = value.strip('"')
    return out


def bearer(tokens: TokenServer, user: str, *scopes: str) -> dict[str, str]:
    """Fetch a token from the realm as a client does."""
    auth = (user, USERS[user].password)
    r = httpx.get(tokens.realm, params=[("service", "layerstore-test"),
                                        *(("scope", s) for s in scopes)], auth=auth)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["token"] == doc["access_token"] and doc["expires_in"] > 0 and doc["issued_at"]
    return {"Authorization": f"Bearer {doc['token']}"}


def push_image(c: httpx.Client, name: str, headers: dict[str, str]) -> tuple[str, bytes]:
    config = b'{"architecture":"amd64","os":"linux"}'
    r = c.post(f"/v2/{name}/blobs/uploads/", params={"digest": sha(config)}, content=config,
               headers=headers)
    assert r.status_code == 201, r.text
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [],
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": sha(config), "size": len(config)}}).encode()
    r = c.put(f"/v2/{name}/manifests/v1", content=body,
              headers={**headers, "Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    return sha(config), body


def test_scope_grammar_keeps_host_port_in_names() -> None:
    assert parse_scope("repository:127.0.0.1:5000/team/app:pull,push") == Scope(
        "repository", "127.0.0.1:5000/team/app", ("pull", "push"))
    assert parse_scope("registry:catalog:*") == Scope("registry", "catalog", ("*",))
    assert parse_scope("repository(plugin):x/y:pull").type == "repository(plugin)"
    text = "repository:localhost:5000/a:delete"
    assert str(parse_scope(text)) == text
    assert parse_scopes(["repository:a:pull repository:b:push"]) == [
        Scope("repository", "a", ("pull",)), Scope("repository", "b", ("push",))]
    for bad in ("repository", "repository:a", ":a:pull", "Repo:a:pull", "repository:a:PULL!"):
        with pytest.raises(ScopeError):
            parse_scope(bad)


def test_config_errors_name_the_key(pki: PKI, tmp_path: Path) -> None:
    good = pki.auth_config("http://auth.invalid/token")
    cases: list[tuple[dict[str, Any], str]] = [
        ({k: v for k, v in good.items() if k != "realm"}, "auth.token.realm"),
        ({k: v for k, v in good.items() if k != "issuer"}, "auth.token.issuer"),
        ({k: v for k, v in good.items() if k not in ("jwks", "rootcertbundle")}, "rootcertbundle"),
        ({**good, "signingalgorithms": "RS256"}, "signingalgorithms"),
        ({**good, "signingalgorithms": ["HS256"]}, "signingalgorithms"),
        ({**good, "signingalgorithms": ["none"]}, "signingalgorithms"),
        ({**good, "rootcertbundle": str(tmp_path / "absent.pem")}, "rootcertbundle"),
        ({**good, "jwks": str(pki.root_pem)}, "auth.token.jwks"),
        ({**good, "autoredirect": "maybe"}, "autoredirect"),
        ({**good, "realms": "x"}, "auth.token.realms"),
    ]
    (tmp_path / "junk.pem").write_text("not a certificate")
    cases.append(({**good, "rootcertbundle": str(tmp_path / "junk.pem")}, "rootcertbundle"))
    for section, key in cases:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            raw = {"storage": {"inmemory": {}}, "auth": {"token": section}}
            create_app(parse_config(raw), InMemoryDriver())
    both = {"token": good, "htpasswd": {"realm": "r", "path": "/x"}}
    with pytest.raises(ConfigError, match="one scheme"):
        parse_config({"auth": both})


def test_challenges_name_the_exact_scope(client: httpx.Client) -> None:
    r = client.get("/v2/")
    ch = challenge_of(r)
    assert ch["realm"].endswith("/token") and ch["service"] == "layerstore-test"
    assert "scope" not in ch and "error" not in ch
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    expected = [
        ("GET", f"/v2/{REPO}/manifests/v1", f"repository:{REPO}:pull"),
        ("HEAD", f"/v2/{REPO}/blobs/{sha(b'x')}", f"repository:{REPO}:pull"),
        ("GET", f"/v2/{REPO}/tags/list", f"repository:{REPO}:pull"),
        ("GET", f"/v2/{REPO}/referrers/{sha(b'x')}", f"repository:{REPO}:pull"),
        ("PUT", f"/v2/{REPO}/manifests/v1", f"repository:{REPO}:pull,push"),
        ("POST", f"/v2/{REPO}/blobs/uploads/", f"repository:{REPO}:pull,push"),
        ("DELETE", f"/v2/{REPO}/manifests/v1", f"repository:{REPO}:delete"),
        ("DELETE", f"/v2/{REPO}/blobs/{sha(b'x')}", f"repository:{REPO}:delete"),
        ("GET", "/v2/_catalog", "registry:catalog:*"),
        ("POST", f"/v2/{OTHER}/blobs/uploads/?mount={sha(b'x')}&from={REPO}",
         f"repository:{OTHER}:pull,push repository:{REPO}:pull"),
    ]
    for method, path, scope in expected:
        r = client.request(method, path, content=b"{}" if method == "PUT" else None)
        assert challenge_of(r)["scope"] == scope, (method, path)
    bad = client.get("/v2/Bad_Name/tags/list")  # refused before any challenge names it
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == "NAME_INVALID"


def test_per_repository_access(client: httpx.Client, tokens: TokenServer) -> None:
    alice = bearer(tokens, "alice", f"repository:{REPO}:pull,push,delete")
    config_digest, body = push_image(client, REPO, alice)
    bob = bearer(tokens, "bob", f"repository:{REPO}:pull,push,delete")  # granted pull only
    assert client.get(f"/v2/{REPO}/manifests/v1", headers=bob).content == body
    assert client.get(f"/v2/{REPO}/tags/list", headers=bob).json()["tags"] == ["v1"]
    denied = [
        (client.put(f"/v2/{REPO}/manifests/v2", content=body,
                    headers={**bob, "Content-Type": OCI_MANIFEST}), "pull,push"),
        (client.post(f"/v2/{REPO}/blobs/uploads/", headers=bob), "pull,push"),
        (client.delete(f"/v2/{REPO}/manifests/v1", headers=bob), "delete"),
        (client.delete(f"/v2/{REPO}/blobs/{config_digest}", headers=bob), "delete"),
    ]
    for r, actions in denied:
        ch = challenge_of(r)
        assert ch["error"] == "insufficient_scope" and ch["scope"] == f"repository:{REPO}:{actions}"
        assert r.json()["errors"][0]["code"] == "DENIED"
    assert client.get(f"/v2/{REPO}/manifests/v1", headers=bob).status_code == 200  # still there
    # A token for one repository is nothing in another.
    r = client.get(f"/v2/{OTHER}/tags/list", headers=bob)
    assert challenge_of(r)["error"] == "insufficient_scope"
    # The catalog needs registry:catalog:*.
    assert challenge_of(client.get("/v2/_catalog", headers=alice))["scope"] == "registry:catalog:*"
    cat = bearer(tokens, "alice", "registry:catalog:*")
    assert client.get("/v2/_catalog", headers=cat).json() == {"repositories": [REPO]}
    assert client.get("/v2/", headers=bob).status_code == 200
    assert client.delete(f"/v2/{REPO}/manifests/v1", headers=alice).status_code in (202, 405)


def test_mount_needs_pull_on_the_source(client: httpx.Client, tokens: TokenServer) -> None:
    alice = bearer(tokens, "alice", f"repository:{REPO}:pull,push")
    config_digest, _ = push_image(client, REPO, alice)
    mount = f"/v2/{OTHER}/blobs/uploads/?mount={config_digest}&from={REPO}"
    # carol may push to OTHER but not read REPO: a plain upload, never a mount.
    carol = bearer(tokens, "carol", f"repository:{OTHER}:pull,push", f"repository:{REPO}:pull")
    r = client.post(mount, headers=carol)
    assert r.status_code == 202, r.text
    assert client.head(f"/v2/{OTHER}/blobs/{config_digest}", headers=carol).status_code == 404
    # alice may read REPO: the blob is mounted.
    both = bearer(tokens, "alice", f"repository:{OTHER}:pull,push", f"repository:{REPO}:pull")
    r = client.post(mount, headers=both)
    assert r.status_code == 201 and r.headers["Location"].endswith(config_digest)
    # bob may read REPO but not push to OTHER: the challenge names both scopes.
    bob = bearer(tokens, "bob", f"repository:{OTHER}:pull,push", f"repository:{REPO}:pull")
    ch = challenge_of(client.post(mount, headers=bob))
    assert ch["error"] == "insufficient_scope"
    assert ch["scope"] == f"repository:{OTHER}:pull,push repository:{REPO}:pull"


def _forged(pki: PKI, access: list[dict[str, Any]]) -> dict[str, str]:
    good = claims(access)
    now = int(time.time())
    stranger = ECKey.import_key(ec.generate_private_key(ec.SECP256R1()))
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    self_signed = make_cert("token signer", stranger_key)
    head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(good).encode()).rstrip(b"=").decode()
    valid = pki.root_signer.sign(good)
    tampered_claims = {**good, "access": [{"type": "repository", "name": "x", "actions": ["*"]}]}
    tampered_body = base64.urlsafe_b64encode(
        json.dumps(tampered_claims).encode()).rstrip(b"=").decode()
    h, _, sig = valid.split(".")
    return {
        "alg none": f"{head}.{body}.",
        "HS256 with the public key as secret": _hs256(pki, good),
        "unknown kid": Signer("ES256", stranger, {"kid": "nobody"}).sign(good),
        "right kid, wrong key": Signer("ES256", stranger, pki.root_signer.header).sign(good),
        "x5c not chaining to a root": Signer(
            "ES256", ECKey.import_key(stranger_key), {"x5c": [der_b64(self_signed)]}).sign(good),
        "expired": pki.root_signer.sign({**good, "exp": now - 600, "iat": now - 900}),
        "not yet valid": pki.root_signer.sign({**good, "nbf": now + 600}),
        "issued in the future": pki.root_signer.sign({**good, "iat": now + 600}),
        "wrong audience": pki.root_signer.sign({**good, "aud": "another-registry"}),
        "wrong issuer": pki.root_signer.sign({**good, "iss": "evil-issuer"}),
        "no expiry": pki.root_signer.sign({k: v for k, v in good.items() if k != "exp"}),
        "tampered claims": f"{h}.{tampered_body}.{sig}",
        "garbage": "not.a.jwt",
    }


def _hs256(pki: PKI, doc: dict[str, Any]) -> str:
    import hmac

    header = {"alg": "HS256", "typ": "JWT", **pki.root_signer.header}
    parts = [base64.urlsafe_b64encode(json.dumps(x).encode()).rstrip(b"=") for x in (header, doc)]
    signing_input = b".".join(parts)
    mac = hmac.new(pki.root_public_pem, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()


def test_forged_tokens_are_invalid_token(client: httpx.Client, pki: PKI) -> None:
    access = [{"type": "repository", "name": REPO, "actions": ["pull", "push"]}]
    good = claims(access)
    for name, signer in [("ES256, kid = root thumbprint", pki.root_signer),
                         ("ES256, x5c chain", pki.chain_signer),
                         ("RS256, JWKS", pki.rsa_signer), ("EdDSA, JWKS", pki.ed_signer)]:
        r = client.get(f"/v2/{REPO}/tags/list",
                       headers={"Authorization": f"Bearer {signer.sign(good)}"})
        assert r.status_code == 404, (name, r.text)  # authorized; the repository is empty
    for name, token in _forged(pki, access).items():
        r = client.get(f"/v2/{REPO}/tags/list", headers={"Authorization": f"Bearer {token}"})
        ch = challenge_of(r)
        assert ch["error"] == "invalid_token", name
        assert ch["scope"] == f"repository:{REPO}:pull", name
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED", name
    r = client.get("/v2/", headers={"Authorization": "Basic YWxpY2U6YWxpY2UtcHc="})
    assert "error" not in challenge_of(r)


def test_signing_algorithms_and_autoredirect(pki: PKI) -> None:
    cfg = token_config(pki, signingalgorithms=["RS256"], autoredirect=True,
                       autoredirectpath="/auth/custom")
    good = claims([{"type": "repository", "name": REPO, "actions": ["pull"]}])
    with ThreadedServer(cfg, InMemoryDriver()) as srv, httpx.Client(base_url=srv.url) as c:
        ok = c.get("/v2/", headers={"Authorization": f"Bearer {pki.rsa_signer.sign(good)}"})
        assert ok.status_code == 200
        es = c.get("/v2/", headers={"Authorization": f"Bearer {pki.root_signer.sign(good)}"})
        assert challenge_of(es)["error"] == "invalid_token"
        host = srv.url.removeprefix("http://")
        assert challenge_of(c.get("/v2/"))["realm"] == f"https://{host}/auth/custom"
        r = c.get("/v2/", headers={"X-Forwarded-Proto": "http"})
        assert challenge_of(r)["realm"] == f"http://{host}/auth/custom"


def test_autoredirect_realm_is_built_by_the_url_builder(pki: PKI) -> None:
    """``http.prefix``, forwarded headers and ``http.host`` apply to the autoredirect realm."""
    def realm(c: httpx.Client, path: str, **headers: str) -> str:
        return challenge_of(c.get(path, headers=headers))["realm"]

    prefixed = token_config(pki, autoredirect=True, autoredirectpath="/auth/token")
    prefixed = dataclasses.replace(prefixed, urls=URLConfig(prefix="/pre", relative=True))
    with ThreadedServer(prefixed, InMemoryDriver()) as srv, httpx.Client(base_url=srv.url) as c:
        host = srv.url.removeprefix("http://")
        # absolute although relativeurls is on (a realm must be), with the prefix
        assert realm(c, "/pre/v2/") == f"https://{host}/pre/auth/token"
        assert realm(c, "/pre/v2/", forwarded='proto=http;host="r.example:5000"') == \
            "http://r.example:5000/pre/auth/token"
        assert realm(c, "/pre/v2/", **{"X-Forwarded-Host": "front.example",
                                       "X-Forwarded-Proto": "https"}) == \
            "https://front.example/pre/auth/token"
    hosted = dataclasses.replace(prefixed, urls=URLConfig(prefix="/pre",
                                                         host="https://reg.example/pre/"))
    with ThreadedServer(hosted, InMemoryDriver()) as srv, httpx.Client(base_url=srv.url) as c:
        assert realm(c, "/pre/v2/", **{"X-Forwarded-Host": "ignored.example"}) == \
            "https://reg.example/pre/auth/token"
