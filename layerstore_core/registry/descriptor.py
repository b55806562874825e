"""What the service reports about content, and the ``link`` files that make it visible."""

from __future__ import annotations

import dataclasses
import logging

from ..driver import StorageDriver
from ..errors import PathNotFoundError
from .errors import DigestInvalidError
from .names import validate_digest

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Descriptor:
    """A blob's digest and size, with its media type where the store knows it."""

    digest: str
    size: int
    media_type: str | None = None


def read_link(driver: StorageDriver, path: str) -> str | None:
    """Return the digest a ``link`` file holds, or None when there is none (or it is damaged)."""
    try:
        raw = driver.get_content(path)
    except PathNotFoundError:
        return None
    try:
        return validate_digest(raw.decode("ascii"))
    except (UnicodeDecodeError, DigestInvalidError):
        log.warning("ignoring damaged link %s (%d bytes)", path, len(raw))
        return None


def write_link(driver: StorageDriver, path: str, digest: str) -> None:
    """Write a ``link``: the digest string, no newline (71 bytes for sha256), as Distribution."""
    driver.put_content(path, digest.encode("ascii"))


def blob_size(driver: StorageDriver, path: str) -> int | None:
    """Size of the blob content at ``path``, or None when it is missing."""
    try:
        return driver.stat_file(path).size  # one HEAD on object stores, no directory listing
    except PathNotFoundError:
        return None
