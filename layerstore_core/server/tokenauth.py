"""``auth.token``: Distribution's token authentication, authorizing each request per repository.

A client without a token gets ``401`` and a ``WWW-Authenticate: Bearer realm=…,service=…,
scope=…`` naming exactly the scopes the request needs; it fetches a JWT from the realm and
retries with ``Authorization: Bearer <jwt>``. The token must be signed with an allowed
asymmetric algorithm by a trusted key — an ``x5c`` chain ending at a certificate of
``rootcertbundle``, or a ``kid`` that is the RFC 7638 thumbprint of such a certificate's key or
the ``kid`` of a key in the ``jwks`` file — and carry the right ``iss``, ``aud`` and times; its
``access`` claim then decides. Verification is joserfc's (signatures, claims) and cryptography's
(certificate chains): no cryptography is written here.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, GuestProtocol, KeySet, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from ..registry import errors as registry_errors
from .access import Grants, Scope
from .config import ConfigError, TokenAuth

log = logging.getLogger(__name__)

#: Asymmetric algorithms only: HS* would need a shared secret, and ``none`` signs nothing.
SUPPORTED_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)
#: An ``x5c`` header carries whole certificates; joserfc's default 512-byte header limit is for
#: ``kid``-only headers. Tokens stay small enough that this bounds nothing a client needs.
MAX_HEADER_BYTES = 16 * 1024
#: Clock skew allowed on ``exp``, ``nbf`` and ``iat`` (Distribution allows the same minute).
LEEWAY_S = 60

PublicKey = RSAKey | ECKey | OKPKey
# Distribution's configs and token servers name Ed25519 signatures "EdDSA"; RFC 9864 renames the
# algorithm without finding a weakness, so joserfc's per-token warning would only flood the log.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)
#: A token signer's certificate is no TLS client's: it needs no SAN, and any EKU will do (as Go's
#: ``ExtKeyUsageAny`` in Distribution). Everything else is the Web PKI profile.
_SIGNER_POLICY = (
    ExtensionPolicy.webpki_defaults_ee()
    .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
)


class UnauthorizedError(registry_errors.UnauthorizedError):
    """No valid token: the challenge says where to get one and for which scopes."""

    def __init__(self, message: str, challenge: str, detail: Any = None) -> None:
        super().__init__(message, detail=detail, headers={"WWW-Authenticate": challenge})


class InsufficientScopeError(UnauthorizedError):
    """A valid token that does not grant what the request needs.

    403 with the challenge, as RFC 6750 (3.1) has it for ``insufficient_scope``: clients that
    keep a token (oras-py) ask for a new one on a 403 and would resend the old one on a 401.
    """

    code = "DENIED"
    status = 403


class InvalidTokenError(Exception):
    """The bearer token is not one this registry trusts (the reason is logged, not sent)."""


def _public_key(key: object) -> PublicKey:
    if isinstance(key, rsa.RSAPublicKey):
        return RSAKey.import_key(key)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ECKey.import_key(key)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return OKPKey.import_key(key)
    raise ValueError(f"unsupported key type {type(key).__name__}")


def _load_roots(path: str) -> list[x509.Certificate]:
    key = "auth.token.rootcertbundle"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    try:
        roots = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigError(f"{key}: {path} holds no readable PEM certificate: {exc}") from None
    return roots


def _load_jwks(path: str) -> dict[str, PublicKey]:
    key = "auth.token.jwks"
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        keys = KeySet.import_key_set(doc).keys
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    except (ValueError, TypeError, KeyError, JoseError) as exc:
        raise ConfigError(f"{key}: {path} is not a JSON Web Key Set: {exc}") from None
    found: dict[str, PublicKey] = {}
    for jwk in keys:
        if not isinstance(jwk, PublicKey) or not jwk.kid:
            raise ConfigError(f"{key}: every key needs a kid and must be RSA, EC or OKP")
        found[jwk.kid] = _public_key(jwk.public_key)
    return found


class TokenVerifier:
    """Checks a bearer JWT against the trusted keys, algorithms, issuer and service."""

    def __init__(self, config: TokenAuth) -> None:
        algorithms = config.signingalgorithms or SUPPORTED_ALGORITHMS
        bad = [a for a in algorithms if a not in SUPPORTED_ALGORITHMS]
        if bad:
            raise ConfigError(f"auth.token.signingalgorithms: unsupported {bad} "
                              f"(supported: {', '.join(SUPPORTED_ALGORITHMS)})")
        self.algorithms = tuple(algorithms)
        self._registry = JWSRegistry(algorithms=self.algorithms)
        self._registry.max_header_length = MAX_HEADER_BYTES
        self.roots = _load_roots(config.rootcertbundle) if config.rootcertbundle else []
        self.keys: dict[str, PublicKey] = {}
        for cert in self.roots:
            root_key = _public_key(cert.public_key())
            self.keys[root_key.thumbprint()] = root_key
        if config.jwks:
            self.keys.update(_load_jwks(config.jwks))
        if not self.keys:
            raise ConfigError("auth.token: no signing key in rootcertbundle or jwks")
        self._claims = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_S,
            iss={"essential": True, "value": config.issuer},
            aud={"essential": True, "value": config.service},
            exp={"essential": True},
        )

    def verify(self, raw: str) -> dict[str, Any]:
        """The claims of a trusted, current token for this service; else InvalidTokenError."""
        try:
            token = jwt.decode(raw, self._key_for, algorithms=self.algorithms,
                               registry=self._registry)
            self._claims.validate(token.claims)
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidTokenError(f"{type(exc).__name__}: {exc}") from None
        return dict(token.claims)

    def _key_for(self, obj: GuestProtocol) -> PublicKey:
        header = obj.headers()
        chain = header.get("x5c")
        if chain is not None:
            return self._chain_key(chain)
        kid = header.get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise ValueError(f"unknown kid {kid!r}")
        return key

    def _chain_key(self, chain: object) -> PublicKey:
        """The leaf's key, once the ``x5c`` chain is verified to end at a trusted root."""
        if not isinstance(chain, list) or not chain or not all(isinstance(c, str) for c in chain):
            raise ValueError("x5c must be a list of base64 certificates")
        try:
            certs = [x509.load_der_x509_certificate(base64.b64decode(c, validate=True))
                     for c in chain]
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"x5c holds a bad certificate: {exc}") from None
        leaf = certs[0]
        if leaf not in self.roots:  # a root signing tokens itself is trusted as it is
            if not self.roots:
                raise ValueError("x5c given but no rootcertbundle is configured")
            verifier = (PolicyBuilder().store(Store(self.roots)).time(dt.datetime.now(dt.UTC))
                        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                                            ee_policy=_SIGNER_POLICY)
                        .build_client_verifier())
            try:
                verifier.verify(leaf, certs[1:])
            except VerificationError as exc:
                raise ValueError(f"x5c does not chain to a trusted root: {exc}") from None
        return _public_key(leaf.public_key())


class TokenAuthenticator:
    """Authorizes requests from bearer tokens and builds Distribution's challenges."""

    _ERRORS: ClassVar[dict[str, str]] = {
        "invalid": "invalid_token", "insufficient": "insufficient_scope",
    }

    def __init__(self, config: TokenAuth) -> None:
        self.config = config
        self.verifier = TokenVerifier(config)

    def challenge(self, scopes: Sequence[Scope], error: str | None = None,
                  realm: str | None = None) -> str:
        """``Bearer realm="…",service="…"[,scope="…"][,error="…"]`` as Distribution writes it.

        ``realm`` is the ``autoredirect`` realm, built by the server's URL builder (so that
        ``http.host``, forwarded headers and ``http.prefix`` apply); else the configured one.
        """
        if realm is None or not self.config.autoredirect:
            realm = self.config.realm
        value = f'Bearer realm="{realm}",service="{self.config.service}"'
        if scopes:
            value += f',scope="{" ".join(str(s) for s in scopes)}"'
        if error is not None:
            value += f',error="{self._ERRORS[error]}"'
        return value

    def grants(self, headers: Mapping[str, str], scopes: Sequence[Scope],
               realm: str | None = None) -> Grants:
        """What the request's token grants; no or a bad token → UnauthorizedError."""
        kind, _, raw = headers.get("authorization", "").partition(" ")
        if kind.lower() != "bearer" or not raw.strip():
            raise UnauthorizedError("authentication required",
                                    self.challenge(scopes, realm=realm), detail=_detail(scopes))
        try:
            claims = self.verifier.verify(raw.strip())
        except InvalidTokenError as exc:
            log.info("bearer token refused: %s", exc)
            raise UnauthorizedError("invalid token",
                                    self.challenge(scopes, "invalid", realm),
                                    detail=_detail(scopes)) from None
        return Grants(claims.get("access"), claims.get("sub"))

    def authorize(self, headers: Mapping[str, str], scopes: Sequence[Scope],
                  optional: Sequence[Scope] = (), realm: str | None = None) -> Grants:
        """The token's grants when they cover ``scopes``; else the challenge for them.

        ``optional`` scopes (``pull`` on a mount's source) are asked for in the challenge but
        not required: without them the caller does less (a plain upload instead of a mount).
        """
        asked = [*scopes, *optional]
        grants = self.grants(headers, asked, realm)
        if grants.missing(scopes):
            raise InsufficientScopeError("requested access to the resource is denied",
                                         self.challenge(asked, "insufficient", realm),
                                         detail=_detail(scopes))
        return grants


def _detail(scopes: Sequence[Scope]) -> list[dict[str, str]]:
    """Distribution's error detail: the access records the request needed."""
    return [{"Type": s.type, "Name": s.name, "Action": a} for s in scopes for a in s.actions]
