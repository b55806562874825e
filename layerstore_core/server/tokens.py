"""Upload state tokens: the ``_state`` query parameter of an upload's ``Location``.

A token is ``base64url(json) "." base64url(HMAC-SHA256(secret, json))``; it names the repository,
the upload id, the offset after the last request, the upload's start time and the SHA-256 state
after that offset (Go's 108-byte marshalled form, :mod:`..registry.hashstate`), so a chunk
resumes its hash without reading a hash-state object. Any process that shares ``http.secret``
can verify it, so a load-balanced fleet continues one upload; a forged or altered token fails
verification (a client cannot hand the server a hash of bytes it never sent). The authoritative
offset stays the backend's: the token's is a hint, and its hash state is used only when its
length is the backend's offset.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets

TOKEN_MAX_LENGTH = 4096
#: A carried hash state is Go's marshalled SHA-256 (108 bytes); anything longer is refused.
HASH_STATE_MAX = 128


class InvalidTokenError(ValueError):
    """The state token is malformed, forged, or belongs to another upload."""


@dataclasses.dataclass(frozen=True)
class UploadState:
    """What a token carries."""

    name: str
    id: str
    offset: int
    started_at: str
    #: The marshalled hash state after ``offset`` bytes; empty when the token carries none.
    hash_state: bytes = dataclasses.field(default=b"", repr=False)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def random_secret() -> str:
    """Make a secret for a single process (uploads then do not survive a restart)."""
    return secrets.token_urlsafe(32)


class TokenSigner:
    """Signs and verifies :class:`UploadState` tokens with one secret."""

    def __init__(self, secret: str) -> None:
        self._key = secret.encode("utf-8")

    def __repr__(self) -> str:
        return "TokenSigner(<secret>)"

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def sign(self, state: UploadState) -> str:
        fields: dict[str, object] = {"name": state.name, "id": state.id, "offset": state.offset,
                                     "started_at": state.started_at}
        if state.hash_state:
            fields["hash_state"] = _b64(state.hash_state)
        payload = json.dumps(fields, separators=(",", ":"), sort_keys=True)
        raw = payload.encode("utf-8")
        return f"{_b64(raw)}.{_b64(self._mac(raw))}"

    def verify(self, token: str, *, name: str, upload_id: str) -> UploadState:
        """Decode ``token``, checked against the repository and id in the URL."""
        if not token or len(token) > TOKEN_MAX_LENGTH or token.count(".") != 1:
            raise InvalidTokenError("malformed upload state token")
        body, mac = token.split(".")
        try:
            raw, given = _unb64(body), _unb64(mac)
        except (ValueError, TypeError):
            raise InvalidTokenError("malformed upload state token") from None
        if not hmac.compare_digest(given, self._mac(raw)):
            raise InvalidTokenError("upload state token signature does not match")
        try:
            fields = json.loads(raw)
            hash_state = _unb64(str(fields.get("hash_state", "")))
            if len(hash_state) > HASH_STATE_MAX:
                raise ValueError("hash state too long")
            state = UploadState(
                name=str(fields["name"]), id=str(fields["id"]),
                offset=int(fields["offset"]), started_at=str(fields["started_at"]),
                hash_state=hash_state,
            )
        except (ValueError, KeyError, TypeError, RecursionError, AttributeError):
            raise InvalidTokenError("malformed upload state token") from None
        if state.name != name or state.id != upload_id:
            raise InvalidTokenError("upload state token belongs to another upload")
        return state
