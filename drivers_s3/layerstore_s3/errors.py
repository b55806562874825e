"""Translation of botocore errors into layerstore's error tree, in one place.

Every S3 call the driver makes runs inside :func:`translated`, which looks the S3 error code up in
:data:`ERROR_TABLE` and raises our class ``from`` the botocore exception. Codes missing from the
table become a plain :class:`StorageDriverError`. Retries are botocore's (see ``driver.py``); no
message text is ever matched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from botocore.exceptions import BotoCoreError, ClientError

from layerstore_core.errors import InvalidOffsetError, PathNotFoundError, StorageDriverError

#: S3 error code (or bare HTTP status, which HEAD responses carry) → our error class.
ERROR_TABLE: dict[str, type[StorageDriverError]] = {
    "NoSuchKey": PathNotFoundError,
    "404": PathNotFoundError,
    "NotFound": PathNotFoundError,
    "NoSuchUpload": PathNotFoundError,
    "InvalidRange": InvalidOffsetError,
    "416": InvalidOffsetError,
    "NoSuchBucket": StorageDriverError,
    "AccessDenied": StorageDriverError,
    "403": StorageDriverError,
    "InvalidAccessKeyId": StorageDriverError,
    "SignatureDoesNotMatch": StorageDriverError,
    "EntityTooSmall": StorageDriverError,
    "InvalidPart": StorageDriverError,
    "InvalidPartOrder": StorageDriverError,
    "PreconditionFailed": StorageDriverError,
    "ConditionalRequestConflict": StorageDriverError,
    "SlowDown": StorageDriverError,
    "InternalError": StorageDriverError,
}


def error_code(exc: ClientError) -> str:
    """Return the S3 error code of a ClientError (HEAD errors carry only the HTTP status)."""
    code = exc.response.get("Error", {}).get("Code")
    if code:
        return str(code)
    return str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def translate(exc: Exception, path: str | None = None) -> StorageDriverError:
    """Our error for a botocore exception (the caller raises it ``from exc``)."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        cls = ERROR_TABLE.get(code, StorageDriverError)
        return cls(f"S3 {code}: {exc}", path=path)
    return StorageDriverError(f"S3 client: {type(exc).__name__}: {exc}", path=path)


def raise_translated(exc: Exception, path: str | None = None) -> NoReturn:
    """Raise :func:`translate`'s error for ``exc``, chained to it."""
    raise translate(exc, path) from exc


@contextmanager
def translated(path: str | None = None) -> Iterator[None]:
    """Run S3 calls; botocore failures leave as our errors, stamped with ``path``."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise_translated(exc, path)
