"""OCI distribution-spec error responses: a RegistryError's code, status and JSON body.

Every refusal, from the blob service or from the HTTP layer itself, is a typed
:class:`~layerstore_core.registry.errors.RegistryError` whose class states its OCI code and
status; :func:`from_exception` passes those through (a storage write that found no room becomes
:class:`StorageFullError`, any other driver failure a 503 :class:`StorageUnavailableError`)
and turns anything else into a 500 with code UNKNOWN, logged with its
traceback (bad input must never end up there).
"""

from __future__ import annotations

import errno
import json
import logging
from typing import Any

from ..errors import StorageDriverError
from ..registry.errors import RegistryError

log = logging.getLogger(__name__)


def error_body(err: RegistryError) -> bytes:
    """Encode the spec's ``{"errors": [{"code", "message", "detail"}]}``."""
    entry: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.detail is not None:
        entry["detail"] = err.detail
    return json.dumps({"errors": [entry]}).encode("utf-8")


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


class StorageUnavailableError(RegistryError):
    """A storage request failed (a dropped connection, a timeout, a backend 5xx); 503.

    The cause is the backend's, not the client's, and retrying (resuming an upload from its
    ``Range``) is what helps; the driver's own error goes to the log, not to the client.
    """

    code = "UNKNOWN"
    status = 503


def storage_unavailable(exc: BaseException) -> StorageUnavailableError | None:
    """A StorageUnavailableError naming the driver and path, for any other driver failure."""
    if not isinstance(exc, StorageDriverError):
        return None
    log.warning("storage request failed: %s", exc, exc_info=exc)
    return StorageUnavailableError(
        f"storage unavailable: the {exc.driver or 'storage'} driver failed"
        + (f" on {exc.path}" if exc.path else "") + "; retry the request",
        detail={"driver": exc.driver, "path": exc.path},
    )


def from_exception(exc: BaseException) -> RegistryError:
    """The error to answer for any exception raised while handling a request."""
    if isinstance(exc, RegistryError):
        return exc
    full = storage_full(exc) or storage_unavailable(exc)
    if full is not None:
        return full
    log.error("unhandled error", exc_info=exc)
    return RegistryError("internal server error")
