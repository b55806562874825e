"""OCI distribution-spec error responses: a RegistryError's code, status and JSON body.

Every refusal, from the blob service or from the HTTP layer itself, is a typed
:class:`~layerstore_core.registry.errors.RegistryError` whose class states its OCI code and
status; :func:`from_exception` passes those through and turns anything else into a 500 with code
UNKNOWN, logged with its traceback (bad input must never end up there).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..registry.errors import RegistryError

log = logging.getLogger(__name__)


def error_body(err: RegistryError) -> bytes:
    """Encode the spec's ``{"errors": [{"code", "message", "detail"}]}``."""
    entry: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.detail is not None:
        entry["detail"] = err.detail
    return json.dumps({"errors": [entry]}).encode("utf-8")


def from_exception(exc: BaseException) -> RegistryError:
    """The error to answer for any exception raised while handling a request."""
    if isinstance(exc, RegistryError):
        return exc
    log.error("unhandled error", exc_info=exc)
    return RegistryError("internal server error")
