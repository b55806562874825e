"""layerstore: the storage layer of a container registry.

The storage-driver contract (:class:`StorageDriver`), driver discovery (:func:`load_driver`),
and the blob and manifest service built on any driver.
"""

from .discovery import DriverLoadError, DriverNotFoundError, available_drivers, load_driver
from .driver import FileInfo, FileWriter, StorageDriver
from .errors import (
    InvalidOffsetError,
    InvalidPathError,
    PathNotFoundError,
    StorageDriverError,
    UnsupportedMethodError,
    WriterClosedError,
)
from .params import ParameterError

__all__ = [
    "DriverLoadError",
    "DriverNotFoundError",
    "FileInfo",
    "FileWriter",
    "InvalidOffsetError",
    "InvalidPathError",
    "ParameterError",
    "PathNotFoundError",
    "StorageDriver",
    "StorageDriverError",
    "UnsupportedMethodError",
    "WriterClosedError",
    "available_drivers",
    "load_driver",
]
