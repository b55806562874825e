"""The access log: one INFO line per request on the ``layerstore.access`` logger.

Field names are Distribution's (``http.request.method``, ``http.response.status``, ``vars.name``,
``auth.user.name``, …) so log queries carry over. Nothing secret is written: the query's
``_state`` token (the signed upload state) is replaced by ``REDACTED``, and no header but the
user agent is logged (never ``Authorization``). ``log.accesslog.disabled`` turns it off.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

from .metrics import RequestRecord

log = logging.getLogger("layerstore.access")

#: Query parameters whose values are secrets.
SECRET_PARAMS = {"_state"}
_REPOSITORY = re.compile(r"^/v2/(.+?)/(?:tags/list|manifests/|blobs/)")


def redacted_uri(path: str, query: str) -> str:
    """``path?query`` with every secret parameter's value replaced."""
    if not query:
        return path
    pairs = [(k, "REDACTED" if k in SECRET_PARAMS else v)
             for k, v in parse_qsl(query, keep_blank_values=True)]
    return f"{path}?{urlencode(pairs, safe=':/')}"


def repository(path: str) -> str | None:
    """The repository name in a ``/v2/<name>/…`` path."""
    m = _REPOSITORY.match(path)
    return m.group(1) if m else None


def fields(record: RequestRecord) -> dict[str, Any]:
    """The line's fields, in Distribution's names (ours: route, read bytes).

    The URI is the path as the client sent it (``http.prefix`` included); the route name and
    the repository are read below the prefix.
    """
    scope = record.scope
    headers = {k.decode("latin-1").lower(): v.decode("latin-1")
               for k, v in scope.get("headers", [])}
    client = scope.get("client")
    out: dict[str, Any] = {
        "http.request.id": record.id,
        "http.request.method": record.method,
        "http.request.uri": redacted_uri(scope.get("prefixed_path", record.path),
                                         scope.get("query_string", b"").decode("latin-1")),
        "http.request.route": record.route,
        "http.request.remoteaddr": f"{client[0]}:{client[1]}" if client else "",
        "http.request.useragent": headers.get("user-agent", ""),
        "http.request.read": record.bytes_in,
        "http.response.status": record.status,
        "http.response.written": record.bytes_out,
        "http.response.duration": f"{record.duration:.3f}s",
    }
    name = repository(record.path)
    if name is not None:
        out["vars.name"] = name
    if record.user is not None:
        out["auth.user.name"] = record.user
    return out


def access_logged(record: RequestRecord) -> None:
    """Write the request's line (a consumer for :func:`.instrument.instrumented`)."""
    if not log.isEnabledFor(logging.INFO):
        return
    status = record.status or "-"  # 0: the client left before any answer
    log.info("%s %s %s", record.method, record.route, status, extra={"fields": fields(record)})
