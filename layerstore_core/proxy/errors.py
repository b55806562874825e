"""Upstream failures as registry errors, so the HTTP layer maps them like any other.

::

    RegistryError
    └── UpstreamError                   UNAVAILABLE       503  unreachable, timed out, 5xx
        ├── UpstreamRateLimitedError    TOOMANYREQUESTS   429  (carries ``retry_after``)
        └── UpstreamDeniedError         DENIED            403  credentials refused upstream
"""

from __future__ import annotations

from ..registry.errors import RegistryError


class UpstreamError(RegistryError):
    """The upstream registry could not serve the request."""

    code = "UNAVAILABLE"
    status = 503


class UpstreamRateLimitedError(UpstreamError):
    """The upstream answered 429 for longer than we wait."""

    code = "TOOMANYREQUESTS"
    status = 429

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamDeniedError(UpstreamError):
    """The upstream refused our credentials (or anonymous access)."""

    code = "DENIED"
    status = 403
