"""The blob and manifest service on any storage driver, in Distribution's v2 layout."""

from .blobs import BlobReader, BlobStore
from .descriptor import Descriptor
from .errors import (
    BlobUnknownError,
    BlobUploadInvalidError,
    BlobUploadUnknownError,
    DigestInvalidError,
    ManifestBlobUnknownError,
    ManifestInvalidError,
    ManifestTooLargeError,
    ManifestUnknownError,
    NameInvalidError,
    NameUnknownError,
    PaginationNumberInvalidError,
    RangeInvalidError,
    RegistryError,
    SizeInvalidError,
    TagInvalidError,
    UnauthorizedError,
    UnsupportedError,
)
from .manifests import Manifest, ManifestStore, PutResult
from .purge import PurgedUpload, purge_uploads
from .registry import Registry, Repository
from .tags import TagStore
from .uploads import BlobUpload

__all__ = [
    "BlobReader",
    "BlobStore",
    "BlobUnknownError",
    "BlobUpload",
    "BlobUploadInvalidError",
    "BlobUploadUnknownError",
    "Descriptor",
    "DigestInvalidError",
    "Manifest",
    "ManifestBlobUnknownError",
    "ManifestInvalidError",
    "ManifestTooLargeError",
    "ManifestStore",
    "ManifestUnknownError",
    "NameInvalidError",
    "NameUnknownError",
    "PaginationNumberInvalidError",
    "PurgedUpload",
    "PutResult",
    "RangeInvalidError",
    "Registry",
    "RegistryError",
    "Repository",
    "SizeInvalidError",
    "TagInvalidError",
    "TagStore",
    "UnauthorizedError",
    "UnsupportedError",
    "purge_uploads",
]
