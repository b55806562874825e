"""A test-only Docker token server, and the keys and certificates it signs with.

It implements the token spec's ``GET <realm>?service=…&scope=…`` with HTTP Basic credentials and
answers ``{"token", "access_token", "expires_in", "issued_at"}``; each user's grants are a map of
repository name to allowed actions (``"*"`` as a name matches every repository), and a scope
is granted the actions it asks for that the user has. Anonymous requests get a token with no
access, as the spec allows. It runs on a thread on 127.0.0.1 so skopeo and podman can reach it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from layerstore_core.server.access import parse_scopes

ISSUER = "layerstore-test-issuer"
SERVICE = "layerstore-test"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(subject: str, key: Any, issuer: tuple[str, Any] | None = None,
              ca: bool = False) -> x509.Certificate:
    """A certificate for ``key``, self-signed or signed by ``issuer`` (name, private key)."""
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (x509.CertificateBuilder().subject_name(_name(subject))
               .issuer_name(_name(issuer_name)).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(hours=1))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   issuer_key.public_key()), critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    sign_hash = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, sign_hash)


def der_b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


@dataclasses.dataclass
class Signer:
    """A private key and the JOSE header that names it (``kid`` or ``x5c``)."""

    alg: str
    key: RSAKey | ECKey | OKPKey
    header: dict[str, Any]

    def sign(self, claims: Mapping[str, Any], **header: Any) -> str:
        return jwt.encode({"alg": self.alg, "typ": "JWT", **self.header, **header}, dict(claims),
                          self.key, algorithms=[self.alg])


@dataclasses.dataclass
class PKI:
    """Everything a test needs: a root CA (the bundle), a chained signer, JWKS signers."""

    root_pem: Path
    jwks_path: Path
    root_signer: Signer  # kid = RFC 7638 thumbprint of the root's key
    chain_signer: Signer  # x5c = [leaf, root-signed]
    rsa_signer: Signer  # kid from the JWKS
    ed_signer: Signer  # EdDSA, kid from the JWKS
    root_public_pem: bytes

    @classmethod
    def create(cls, directory: Path) -> PKI:
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = make_cert("layerstore test root", root_key, ca=True)
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf = make_cert("token signer", leaf_key, issuer=("layerstore test root", root_key))
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ed_key = ed25519.Ed25519PrivateKey.generate()
        root_jwk = ECKey.import_key(root_key)
        rsa_jwk = RSAKey.import_key(rsa_key, {"kid": "rsa-1"})
        ed_jwk = OKPKey.import_key(ed_key, {"kid": "ed-1"})
        root_pem = directory / "root.pem"
        root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
        jwks_path = directory / "jwks.json"
        jwks_path.write_text(json.dumps({"keys": [
            rsa_jwk.as_dict(private=False), ed_jwk.as_dict(private=False)]}))
        return cls(
            root_pem=root_pem, jwks_path=jwks_path,
            root_signer=Signer("ES256", root_jwk, {"kid": root_jwk.thumbprint()}),
            chain_signer=Signer("ES256", ECKey.import_key(leaf_key),
                                {"x5c": [der_b64(leaf), der_b64(root)]}),
            rsa_signer=Signer("RS256", rsa_jwk, {"kid": "rsa-1"}),
            ed_signer=Signer("EdDSA", ed_jwk, {"kid": "ed-1"}),
            root_public_pem=root_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        )

    def auth_config(self, realm: str) -> dict[str, Any]:
        """The ``auth.token`` section trusting this PKI."""
        return {"realm": realm, "service": SERVICE, "issuer": ISSUER,
                "rootcertbundle": str(self.root_pem), "jwks": str(self.jwks_path)}


def claims(access: list[dict[str, Any]], subject: str = "tester", lifetime: int = 300,
           **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    doc = {"iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + lifetime,
           "nbf": now - 1, "iat": now, "jti": uuid.uuid4().hex, "access": access}
    doc.update(overrides)
    return doc


@dataclasses.dataclass
class User:
    password: str
    grants: Mapping[str, tuple[str, ...]]  # repository name (or "*") -> actions

    def allowed(self, kind: str, name: str) -> set[str]:
        if kind == "registry":
            return set(self.grants.get(f"registry:{name}", ()))
        return set(self.grants.get(name, ())) | set(self.grants.get("*", ()))


class TokenServer:
    """The realm: ``url`` + ``/token``; counts the tokens it issued per user."""

    def __init__(self, signer: Signer, users: Mapping[str, User]) -> None:
        self.signer, self.users = signer, dict(users)
        self.issued: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.realm = self.url + "/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def _user(self, header: str | None) -> str | None:
        """The authenticated user; '' for anonymous; None for wrong credentials."""
        if not header:
            return ""
        kind, _, value = header.partition(" ")
        try:
            name, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return None
        user = self.users.get(name)
        if kind.lower() != "basic" or user is None or user.password != password:
            return None
        return name

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        name = self._user(request.headers.get("Authorization"))
        if url.path != "/token" or name is None or query.get("service") != [SERVICE]:
            request.send_response(401 if name is None else 400)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        access = []
        for scope in parse_scopes(query.get("scope", [])):
            allowed = self.users[name].allowed(scope.type, scope.name) if name else set()
            actions = sorted(a for a in scope.actions if a in allowed or "*" in allowed)
            if actions:
                access.append({"type": scope.type, "name": scope.name, "actions": actions})
        token = self.signer.sign(claims(access, subject=name or "anonymous"))
        self.issued[name] = self.issued.get(name, 0) + 1
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300,
                           "issued_at": dt.datetime.now(dt.UTC).isoformat()}).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    @contextmanager
    def running(self) -> Iterator[TokenServer]:
        self._thread.start()
        try:
            yield self
        finally:
            self._httpd.shutdown()
            self._httpd.server_close()
