"""layerstore: the storage layer of a container registry.

The storage-driver contract (:class:`StorageDriver`), driver discovery (:func:`load_driver`),
and the blob and manifest service built on any driver.
"""

from .discovery import DriverLoadError, DriverNotFoundError, available_drivers, load_driver
from .driver import FileInfo, FileWriter, StorageDriver
from .errors import (
    InvalidOffsetError,
    InvalidPathError,
    LayerstoreError,
    PathNotFoundError,
    StorageDriverError,
    UnsupportedMethodError,
    WriterClosedError,
)
from .params import ParameterError
from .registry import (
    BlobUnknownError,
    BlobUploadInvalidError,
    BlobUploadUnknownError,
    Descriptor,
    DigestInvalidError,
    ManifestBlobUnknownError,
    ManifestInvalidError,
    ManifestTooLargeError,
    ManifestUnknownError,
    NameInvalidError,
    NameUnknownError,
    PaginationNumberInvalidError,
    RangeInvalidError,
    Registry,
    RegistryError,
    SizeInvalidError,
    TagInvalidError,
    UnauthorizedError,
    UnsupportedError,
    purge_uploads,
)

__all__ = [
    "BlobUnknownError",
    "BlobUploadInvalidError",
    "BlobUploadUnknownError",
    "Descriptor",
    "DigestInvalidError",
    "DriverLoadError",
    "DriverNotFoundError",
    "FileInfo",
    "FileWriter",
    "InvalidOffsetError",
    "InvalidPathError",
    "LayerstoreError",
    "ManifestBlobUnknownError",
    "ManifestInvalidError",
    "ManifestTooLargeError",
    "ManifestUnknownError",
    "NameInvalidError",
    "NameUnknownError",
    "PaginationNumberInvalidError",
    "ParameterError",
    "PathNotFoundError",
    "RangeInvalidError",
    "Registry",
    "RegistryError",
    "SizeInvalidError",
    "StorageDriver",
    "StorageDriverError",
    "TagInvalidError",
    "UnauthorizedError",
    "UnsupportedError",
    "UnsupportedMethodError",
    "WriterClosedError",
    "available_drivers",
    "load_driver",
    "purge_uploads",
]
