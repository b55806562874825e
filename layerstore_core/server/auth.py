"""``auth.htpasswd``: HTTP Basic authentication against a file of bcrypt entries.

Only bcrypt hashes (``$2y$``, ``$2a$``, ``$2b$``) are accepted, as in Distribution; other lines are
skipped with a warning. bcrypt is deliberately slow, so verified credentials are remembered (by a
SHA-256 of the header, never the password) for the life of the process.

It is all-or-nothing: every user in the file may read, write and delete every repository. Access
per repository is what ``auth.token`` (:mod:`.tokenauth`) is for.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from pathlib import Path

import bcrypt

log = logging.getLogger(__name__)

_BCRYPT_PREFIXES = ("$2y$", "$2a$", "$2b$")
_CACHE_LIMIT = 1024
#: bcrypt reads at most this many bytes of a password (bcrypt 5 raises past it).
BCRYPT_MAX_PASSWORD = 72


class HtpasswdError(ValueError):
    """The htpasswd file cannot be read."""


class Htpasswd:
    """Users and their bcrypt hashes from an htpasswd file."""

    def __init__(self, path: str | Path, realm: str) -> None:
        self.realm = realm
        self._users = self._load(Path(path))
        self._verified: set[bytes] = set()
        # Checked for unknown users, so they cost what a wrong password does: timing must not
        # tell which users exist. Same cost as the file's first entry (bcrypt's default else).
        cost = next(iter(self._users.values()), b"$2b$12$").split(b"$")[2]
        rounds = int(cost) if cost.isdigit() and 4 <= int(cost) <= 31 else 12
        self._dummy = bcrypt.hashpw(b"layerstore-dummy", bcrypt.gensalt(rounds))

    def __repr__(self) -> str:
        return f"Htpasswd(realm={self.realm!r}, {len(self._users)} users)"

    @staticmethod
    def _load(path: Path) -> dict[str, bytes]:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise HtpasswdError(f"auth.htpasswd.path: cannot read {path}: {exc.strerror}") from None
        users: dict[str, bytes] = {}
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not hashed.startswith(_BCRYPT_PREFIXES):
                log.warning("%s:%d: not a user:bcrypt entry, skipped", path, number)
                continue
            users[user] = hashed.replace("$2y$", "$2b$", 1).encode("ascii")
        return users

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value for a 401."""
        return f'Basic realm="{self.realm}"'

    def check(self, authorization: str | None) -> str | None:
        """Return the user if the ``Authorization`` header holds valid credentials, else None."""
        if not authorization or not authorization[:6].lower() == "basic ":
            return None
        key = hashlib.sha256(authorization.encode("utf-8", "replace")).digest()
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        if not sep:
            return None
        hashed = self._users.get(user)
        if hashed is not None and key in self._verified:
            return user
        secret = password.encode("utf-8")
        if len(secret) > BCRYPT_MAX_PASSWORD:  # no valid password is longer: refuse, same cost
            secret, hashed = b"", None
        try:
            matched = bcrypt.checkpw(secret, hashed or self._dummy)
        except ValueError:  # a malformed hash in the file: no password matches it
            matched = False
        if not matched or hashed is None:
            return None
        if len(self._verified) >= _CACHE_LIMIT:
            self._verified.clear()
        self._verified.add(key)
        return user
