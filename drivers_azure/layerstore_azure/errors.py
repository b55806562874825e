"""Translation of Azure SDK errors into layerstore's error tree, in one place.

Every SDK call in this package runs inside :func:`translated`, which looks the service's error
code (``x-ms-error-code``) up in :data:`ERROR_TABLE` and raises :func:`translate`'s error
``from`` the SDK exception; codes missing from the table become a plain
:class:`StorageDriverError` (worded by :data:`CONFIG_MESSAGES` when the configuration is at
fault). Retries are the SDK's retry policy (see ``driver.py``); no message text is ever matched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import AzureError, HttpResponseError

from layerstore_core.errors import InvalidOffsetError, PathNotFoundError, StorageDriverError

#: Azure error code → our error class. Codes absent here are backend failures.
ERROR_TABLE: dict[str, type[StorageDriverError]] = {
    # The blob is missing, or only has uncommitted blocks (Get Blob, Get Blob Properties,
    # Get Block List, Delete Blob, Put Block List with unknown ids is InvalidBlockList).
    "BlobNotFound": PathNotFoundError,
    # Copy Blob: Azure reports a missing source this way (Azurite says BlobNotFound).
    "CannotVerifyCopySource": PathNotFoundError,
    # Get Blob with a range starting past the end.
    "InvalidRange": InvalidOffsetError,
}

#: Codes said in words (mostly a wrong configuration): loudly, never as a missing path.
CONFIG_MESSAGES: dict[str, str] = {
    "ContainerNotFound": "the configured container does not exist",
    "AuthenticationFailed": "authentication failed: check the account key or credential",
    "AuthorizationFailure": "not authorized for this operation",
    "AuthorizationPermissionMismatch": "the credential lacks the permission for this operation",
    "InvalidBlockList": "a staged block of this upload is gone (expired or discarded)",
    "BlockCountExceedsLimit": "the blob reached Azure's limit on blocks",
    # A download's later chunks carry If-Match on the first one's ETag (the SDK does that).
    "ConditionNotMet": "the blob was replaced while it was read; read it again",
}


def error_code(exc: BaseException | None) -> str | None:
    """The service's error code of an SDK exception, as a plain string."""
    code = getattr(exc, "error_code", None)
    if code is None:
        return None
    return str(getattr(code, "value", code))


def translate(exc: AzureError, path: str | None = None) -> StorageDriverError:
    """Our error for one SDK exception (the caller raises it ``from exc``)."""
    code = error_code(exc)
    status = exc.status_code if isinstance(exc, HttpResponseError) else None
    cls = ERROR_TABLE.get(code or "")
    if cls is not None:
        return cls(path=path)
    detail = CONFIG_MESSAGES.get(code or "") or (exc.message or type(exc).__name__).splitlines()[0]
    where = f" (HTTP {status}, {code})" if status is not None else ""
    return StorageDriverError(f"{detail}{where}", path=path)


@contextmanager
def translated(path: str | None = None) -> Iterator[None]:
    """Run SDK calls, raising every SDK failure as our error ``from`` the original."""
    try:
        yield
    except AzureError as exc:
        raise translate(exc, path) from exc
