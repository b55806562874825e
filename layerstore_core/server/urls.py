"""Every URL the registry hands out (``Location``, ``Link``), built in one place as Distribution.

Three modes, from ``http.host``, ``http.relativeurls`` and ``http.prefix`` (Distribution 2.8's
``urls.go`` and ``app.context``):

- ``http.host`` set: ``host`` resolved against (``https://r.example.com/`` gives
  ``https://r.example.com/v2/...``); it wins over ``relativeurls`` and over what a request says;
- ``relativeurls: true``: the route's path, ``/v2/...``, *without* the prefix (as Distribution
  sends it: right behind a proxy that maps ``/v2/`` onto ``/<prefix>/v2/``);
- otherwise absolute, from the request: scheme from ``X-Forwarded-Proto``, else ``Forwarded:
  proto=``, else the connection's; host from ``X-Forwarded-Host`` (its first entry), else
  ``Forwarded: host=``, else ``Host``; then the prefix the request came in under.

A forwarded value that is not a plain scheme or host (a line break, ``ftp``) is skipped, so no
request can put text of its own into a response header.
"""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import urljoin

from .http import Message, Request, Scope

_HOST = re.compile(r"(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
_SCHEMES = ("http", "https")


@dataclasses.dataclass(frozen=True)
class URLConfig:
    """``http.prefix`` (``/pre`` or ``""``), ``http.host`` and ``http.relativeurls``."""

    prefix: str = ""
    host: str | None = None
    relative: bool = False

    def below_prefix(self, path: str) -> str | None:
        """The path under the prefix (``/pre/v2/x`` -> ``/v2/x``), None when not under it."""
        if not self.prefix:
            return path
        if path == self.prefix or path.startswith(self.prefix + "/"):
            return path[len(self.prefix):] or "/"
        return None

    def build(self, req: Request, path: str) -> str:
        """The URL a client should use for ``path`` (``/v2/...``, with any query)."""
        if self.relative and self.host is None:
            return path
        return self.absolute(req, path)

    def absolute(self, req: Request, path: str, scheme: str | None = None) -> str:
        """:meth:`build`, absolute even with ``relativeurls`` (a token realm must be).

        ``scheme``: the one to assume when no forwarded header names one, instead of the
        connection's (``auth.token.autoredirect`` assumes ``https``, as Distribution does).
        """
        if self.host is not None:
            return urljoin(self.host, path[1:])
        scheme, host = origin(req, scheme)
        return f"{scheme}://{host}{self.prefix}{path}"

    def for_scope(self, scope: Scope, path: str) -> str:
        """:meth:`build` for a finished request, known by its ASGI scope (notifications)."""
        return self.build(Request(scope, _no_body), path)


#: Distribution's defaults: no prefix, no host, absolute URLs from the request.
DEFAULT_URLS = URLConfig()


async def _no_body() -> Message:
    raise RuntimeError("a finished request has no body to read")


def _forwarded(req: Request) -> dict[str, str]:
    """The first element of RFC 7239 ``Forwarded`` as lower-case keys (quotes removed)."""
    first = req.headers.get("forwarded", "").split(",", 1)[0]
    pairs = (part.split("=", 1) for part in first.split(";") if "=" in part)
    return {k.strip().lower(): v.strip().strip('"') for k, v in pairs}


def _first(value: str | None) -> str:
    return (value or "").split(",", 1)[0].strip()


def origin(req: Request, scheme: str | None = None) -> tuple[str, str]:
    """``(scheme, host[:port])`` the client reached us at, as Distribution 2.8 derives them.

    ``scheme``: assumed when no forwarded header names one (else the connection's).
    """
    forwarded = _forwarded(req)
    schemes = (_first(req.headers.get("x-forwarded-proto")).lower(),
               forwarded.get("proto", "").lower(), scheme or str(req.scope.get("scheme", "http")))
    scheme = next((s for s in schemes if s in _SCHEMES), "http")
    name, port = req.scope.get("server") or ("localhost", None)
    name = f"[{name}]" if ":" in str(name) else str(name)
    own = name if port is None else f"{name}:{port}"
    hosts = (_first(req.headers.get("x-forwarded-host")), forwarded.get("host", ""),
             req.headers.get("host", "").strip(), own)
    host = next((h for h in hosts if _HOST.fullmatch(h)), "localhost")
    return scheme, host
