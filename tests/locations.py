"""Location headers for tests that send the next request to an address of their own choosing."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def path_of(location: str) -> str:
    """The path and query of a Location (absolute by default, as Distribution sends it)."""
    split = urlsplit(location)
    return urlunsplit(("", "", split.path, split.query, ""))
