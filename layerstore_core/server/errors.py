"""OCI distribution-spec errors: a code, its HTTP status, and the JSON body clients parse.

The blob service raises typed errors carrying an OCI code; :func:`from_exception` maps those (and
the few the HTTP layer raises itself) to a response. An error we cannot classify is a 500 with
code UNKNOWN and is logged with its traceback: bad input must never end up there.
"""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import Mapping
from typing import Any

from ..errors import StorageDriverError
from ..registry.errors import RegistryError

log = logging.getLogger(__name__)

#: OCI error code -> HTTP status, as Distribution answers them.
STATUS = {
    "BLOB_UNKNOWN": 404,
    "BLOB_UPLOAD_INVALID": 400,
    "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 400,
    "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404,
    "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404,
    "SIZE_INVALID": 400,
    "TAG_INVALID": 400,
    "UNAUTHORIZED": 401,
    "DENIED": 403,
    "UNSUPPORTED": 405,
    "TOOMANYREQUESTS": 429,
    "RANGE_INVALID": 416,
    "PAGINATION_NUMBER_INVALID": 400,
    "UNKNOWN": 500,
}

MESSAGES = {
    "BLOB_UNKNOWN": "blob unknown to registry",
    "BLOB_UPLOAD_INVALID": "blob upload invalid",
    "BLOB_UPLOAD_UNKNOWN": "blob upload unknown to registry",
    "DIGEST_INVALID": "provided digest did not match uploaded content",
    "MANIFEST_BLOB_UNKNOWN": "manifest references a blob unknown to the registry",
    "MANIFEST_INVALID": "manifest invalid",
    "MANIFEST_UNKNOWN": "manifest unknown",
    "NAME_INVALID": "invalid repository name",
    "NAME_UNKNOWN": "repository name not known to registry",
    "SIZE_INVALID": "provided length did not match content length",
    "TAG_INVALID": "manifest tag did not match URI",
    "UNAUTHORIZED": "authentication required",
    "DENIED": "requested access to the resource is denied",
    "UNSUPPORTED": "The operation is unsupported.",
    "TOOMANYREQUESTS": "too many requests",
    "RANGE_INVALID": "invalid content range",
    "PAGINATION_NUMBER_INVALID": "invalid number of results requested",
    "UNKNOWN": "unknown error",
}


class HTTPError(Exception):
    """An error response the HTTP layer decides on: OCI code, detail, extra headers."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message or MESSAGES.get(code, code))
        self.code = code
        self.message = message or MESSAGES.get(code, code)
        self.detail = detail
        self.headers = dict(headers or {})
        self.status = status if status is not None else STATUS.get(code, 500)


def error_body(code: str, message: str, detail: Any = None) -> bytes:
    """Encode the spec's ``{"errors": [{"code", "message", "detail"}]}``."""
    entry: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        entry["detail"] = detail
    return json.dumps({"errors": [entry]}).encode("utf-8")


def oci_code(exc: BaseException) -> str | None:
    """Return the OCI code an exception carries (``code``: a str or an enum), if any."""
    code = getattr(exc, "code", None)
    if code is None:
        code = getattr(type(exc), "code", None)
    if code is None:
        return None
    text = getattr(code, "value", code)
    if isinstance(text, str) and text in STATUS:
        return text
    name = getattr(code, "name", None)
    return name if isinstance(name, str) and name in STATUS else None


#: errno values that mean the backend has no room left.
_FULL = {errno.ENOSPC, errno.EDQUOT}


class StorageFullError(RegistryError):
    """The storage has no space left; 507 Insufficient Storage (RFC 4918 11.5).

    Not 503: reads still work, so the registry is not unavailable, and a load balancer should
    not take it out; not 500: the cause is known and is the operator's to fix.
    """

    code = "UNKNOWN"
    status = 507


def storage_full(exc: BaseException) -> StorageFullError | None:
    """A StorageFullError naming the driver and path, if ``exc`` is a write that found no room."""
    if not isinstance(exc, StorageDriverError):
        return None
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in _FULL:
            return StorageFullError(
                f"storage full: the {exc.driver or 'storage'} driver has no space left "
                f"(writing {exc.path}: {cause.strerror})",
                detail={"driver": exc.driver, "path": exc.path},
            )
        cause = cause.__cause__ or cause.__context__
    return None


def from_exception(exc: BaseException) -> HTTPError:
    """Map any exception raised while handling a request to its response."""
    if isinstance(exc, HTTPError):
        return exc
    full = storage_full(exc)
    if full is not None:
        exc = full
    code = oci_code(exc)
    if code is not None:
        message = getattr(exc, "message", None) or str(exc) or None
        status = getattr(exc, "status", None)
        headers = getattr(exc, "headers", None)  # a challenge (WWW-Authenticate) travels here
        return HTTPError(code, message, detail=getattr(exc, "detail", None),
                         headers=headers if isinstance(headers, dict) else None,
                         status=status if isinstance(status, int) else None)
    log.error("unhandled error", exc_info=exc)
    return HTTPError("UNKNOWN", "internal server error")
