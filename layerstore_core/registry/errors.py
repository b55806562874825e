"""The registry error tree: each class carries its OCI error code and HTTP status.

::

    RegistryError (a LayerstoreError)              UNKNOWN                 500
    ├── BlobUnknownError (LookupError)             BLOB_UNKNOWN            404
    ├── BlobUploadUnknownError (LookupError)       BLOB_UPLOAD_UNKNOWN     404
    ├── BlobUploadInvalidError                     BLOB_UPLOAD_INVALID     400
    ├── DigestInvalidError (ValueError)            DIGEST_INVALID          400
    ├── SizeInvalidError (ValueError)              SIZE_INVALID            400
    ├── NameInvalidError (ValueError)              NAME_INVALID            400
    ├── NameUnknownError (LookupError)             NAME_UNKNOWN            404
    ├── ManifestUnknownError (LookupError)         MANIFEST_UNKNOWN        404
    ├── ManifestInvalidError (ValueError)          MANIFEST_INVALID        400
    │   └── ManifestTooLargeError                  MANIFEST_INVALID        413
    ├── ManifestBlobUnknownError                   MANIFEST_BLOB_UNKNOWN   400
    ├── TagInvalidError (ValueError)               TAG_INVALID             400
    ├── RangeInvalidError (ValueError)             RANGE_INVALID           416
    ├── PaginationNumberInvalidError (ValueError)  PAGINATION_NUMBER_INVALID 400
    ├── UnauthorizedError                          UNAUTHORIZED            401
    └── UnsupportedError                           UNSUPPORTED             405

``code`` and ``status`` are class attributes and the only mapping to HTTP there is: the server
answers ``e.status`` with ``{"errors": [{"code": e.code, "message": e.message, "detail":
e.detail}]}`` and ``e.headers``. A new code is a new subclass here, never a string elsewhere.
Storage failures stay :class:`~layerstore_core.errors.StorageDriverError` (an HTTP 500).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..errors import LayerstoreError


class RegistryError(LayerstoreError):
    """A blob or manifest operation was refused; ``code`` is the OCI error code."""

    code: ClassVar[str] = "UNKNOWN"
    status: ClassVar[int] = 500

    def __init__(
        self, message: str = "", *, detail: Any = None, headers: Mapping[str, str] | None = None
    ) -> None:
        self.message = message or (type(self).__doc__ or "").strip().splitlines()[0]
        self.detail = detail
        #: Extra response headers (``Range`` of an upload, ``WWW-Authenticate``, ...).
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class BlobUnknownError(RegistryError, LookupError):
    """The blob is not known to this repository."""

    code = "BLOB_UNKNOWN"
    status = 404


class BlobUploadUnknownError(RegistryError, LookupError):
    """No such upload in this repository (never started, finished, cancelled or purged)."""

    code = "BLOB_UPLOAD_UNKNOWN"
    status = 404


class BlobUploadInvalidError(RegistryError):
    """The upload cannot take this operation (for example its state is damaged)."""

    code = "BLOB_UPLOAD_INVALID"
    status = 400


class DigestInvalidError(RegistryError, ValueError):
    """The digest is malformed, or the content does not match it."""

    code = "DIGEST_INVALID"
    status = 400


class SizeInvalidError(RegistryError, ValueError):
    """The content's size does not match the size given."""

    code = "SIZE_INVALID"
    status = 400


class NameInvalidError(RegistryError, ValueError):
    """The repository name breaks the OCI distribution-spec grammar."""

    code = "NAME_INVALID"
    status = 400


class NameUnknownError(RegistryError, LookupError):
    """The repository is not known to the registry."""

    code = "NAME_UNKNOWN"
    status = 404


class ManifestUnknownError(RegistryError, LookupError):
    """The manifest (by digest or tag) is not known to this repository."""

    code = "MANIFEST_UNKNOWN"
    status = 404


class ManifestInvalidError(RegistryError, ValueError):
    """The manifest is not valid JSON of a supported type, or fails validation."""

    code = "MANIFEST_INVALID"
    status = 400


class ManifestTooLargeError(ManifestInvalidError):
    """The manifest is larger than the registry accepts."""

    status = 413


class ManifestBlobUnknownError(RegistryError):
    """The manifest references blobs or manifests this repository does not have."""

    code = "MANIFEST_BLOB_UNKNOWN"
    status = 400


class TagInvalidError(RegistryError, ValueError):
    """The tag breaks the OCI distribution-spec grammar."""

    code = "TAG_INVALID"
    status = 400


class RangeInvalidError(RegistryError, ValueError):
    """The requested range or upload offset is not satisfiable."""

    code = "RANGE_INVALID"
    status = 416


class PaginationNumberInvalidError(RegistryError, ValueError):
    """The page size ``n`` of a tag list or the catalog is not a non-negative integer."""

    code = "PAGINATION_NUMBER_INVALID"
    status = 400


class UnauthorizedError(RegistryError):
    """Authentication is required."""

    code = "UNAUTHORIZED"
    status = 401


class UnsupportedError(RegistryError):
    """The operation is not supported."""

    code = "UNSUPPORTED"
    status = 405


__all__ = [
    "BlobUnknownError",
    "BlobUploadInvalidError",
    "BlobUploadUnknownError",
    "DigestInvalidError",
    "ManifestBlobUnknownError",
    "ManifestInvalidError",
    "ManifestTooLargeError",
    "ManifestUnknownError",
    "NameInvalidError",
    "NameUnknownError",
    "PaginationNumberInvalidError",
    "RangeInvalidError",
    "RegistryError",
    "SizeInvalidError",
    "TagInvalidError",
    "UnauthorizedError",
    "UnsupportedError",
]
