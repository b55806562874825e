"""Upload state tokens: the ``_state`` query parameter of an upload's ``Location``.

A token is ``base64url(json) "." base64url(HMAC-SHA256(secret, json))``; it names the repository,
the upload id, the offset after the last request and the upload's start time. Any process that
shares ``http.secret`` can verify it, so a load-balanced fleet continues one upload; a forged or
altered token fails verification. The authoritative offset stays the backend's: the token's is a
hint for clients and logs.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets

TOKEN_MAX_LENGTH = 4096


class InvalidTokenError(ValueError):
    """The state token is malformed, forged, or belongs to another upload."""


@dataclasses.dataclass(frozen=True)
class UploadState:
    """What a token carries."""

    name: str
    id: str
    offset: int
    started_at: str


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
        payload = json.dumps(dataclasses.asdict(state), separators=(",", ":"), sort_keys=True)
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
            state = UploadState(
                name=str(fields["name"]), id=str(fields["id"]),
                offset=int(fields["offset"]), started_at=str(fields["started_at"]),
            )
        except (ValueError, KeyError, TypeError, RecursionError):
            raise InvalidTokenError("malformed upload state token") from None
        if state.name != name or state.id != upload_id:
            raise InvalidTokenError("upload state token belongs to another upload")
        return state
