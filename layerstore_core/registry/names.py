"""Validation of repository names, tags, digests and upload ids, before any driver call.

The grammars are the OCI distribution spec's. Everything accepted here is also a valid driver
path component sequence (no ``.``/``..``, no empty component), so no name reaches outside the
store's root.
"""

from __future__ import annotations

import re

from .errors import BlobUploadUnknownError, DigestInvalidError, NameInvalidError, TagInvalidError

MAX_NAME_LENGTH = 255
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_PATTERN = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_PATTERN = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
#: Hex lengths of the digest algorithms we accept.
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_DIGEST_PATTERN = re.compile(r"^(sha256|sha512):([a-f0-9]+)$")
UPLOAD_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def validate_name(name: object) -> str:
    """Return ``name`` if it is a valid repository name, else raise NameInvalidError."""
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not NAME_PATTERN.fullmatch(name):
        raise NameInvalidError(f"invalid repository name {name!r}", detail={"name": repr(name)})
    return name


def validate_tag(tag: object) -> str:
    """Return ``tag`` if it is a valid tag, else raise TagInvalidError."""
    if not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag):
        raise TagInvalidError(f"invalid tag {tag!r}", detail={"tag": repr(tag)})
    return tag


def split_digest(digest: object) -> tuple[str, str]:
    """``(algorithm, hex)`` of a valid digest, else DigestInvalidError."""
    match = _DIGEST_PATTERN.fullmatch(digest) if isinstance(digest, str) else None
    if match is None or len(match.group(2)) != DIGEST_HEX_LENGTHS[match.group(1)]:
        raise DigestInvalidError(f"invalid digest {digest!r}", detail={"digest": repr(digest)})
    return match.group(1), match.group(2)


def validate_digest(digest: object) -> str:
    """Return ``digest`` if it is ``sha256:<64 hex>`` or ``sha512:<128 hex>``."""
    split_digest(digest)
    assert isinstance(digest, str)
    return digest


def is_digest_like(reference: str) -> bool:
    """Whether a manifest reference is meant as a digest (tags cannot contain ``:``)."""
    return ":" in reference


def validate_upload_id(upload_id: object) -> str:
    """Return ``upload_id`` if well formed; a malformed id is simply an unknown upload."""
    if not isinstance(upload_id, str) or not UPLOAD_ID_PATTERN.fullmatch(upload_id):
        raise BlobUploadUnknownError(f"unknown upload {upload_id!r}")
    return upload_id
