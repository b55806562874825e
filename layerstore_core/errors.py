"""layerstore's error tree: one root, each family with its stdlib double, context in attributes.

::

    LayerstoreError                              anything layerstore raises on purpose
    ├── StorageDriverError                       backend failure, or any driver error
    │   ├── PathNotFoundError (FileNotFoundError) nothing at that path
    │   ├── InvalidPathError (ValueError)         path breaks the contract's path grammar
    │   ├── InvalidOffsetError (ValueError)       negative offset, or past the end
    │   ├── UnsupportedMethodError                the driver cannot do this at all
    │   ├── WriterClosedError (ValueError)        a FileWriter used after close/commit/cancel
    │   ├── WriteConflictError                    another writer continued the write first
    │   └── PartNumbersExhaustedError             the write used every part number the store has
    ├── RegistryError                            a request the blob/manifest service or the
    │   └── … one class per OCI error code         HTTP API refuses: ``code`` and ``status``
    │                                              (tree in :mod:`layerstore_core.registry.errors`)
    ├── ParameterError (ValueError)              a driver parameter unknown, missing or malformed
    ├── DriverNotFoundError (LookupError)        no installed driver has that name
    ├── DriverLoadError (ImportError)            a driver's entry point failed to load
    ├── ConfigError (ValueError)                 the server's config.yml is malformed
    │                                              (:mod:`layerstore_core.server.config`)
    └── CopyError                                a copy cannot start (:mod:`layerstore_core.ops`)

``except LayerstoreError`` catches every error of ours and nothing else. Storage errors carry
``driver`` (the driver's name) and ``path``; the core wrapper stamps them once, so drivers may
raise ``PathNotFoundError(path=...)`` without naming themselves.
"""

from __future__ import annotations


class LayerstoreError(Exception):
    """The root of every error layerstore raises on purpose."""


class StorageDriverError(LayerstoreError):
    """A storage operation failed; wraps backend failures (``__cause__`` holds the original)."""

    def __init__(
        self,
        message: str = "",
        *,
        path: str | None = None,
        driver: str | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.driver = driver
        self.offset = offset

    def __str__(self) -> str:
        where = f"{self.driver or '?'}: {self.path}" if self.path else (self.driver or "?")
        detail = self.message or type(self).__doc__ or ""
        detail = detail.strip().splitlines()[0] if detail else ""
        if self.offset is not None:
            detail = f"{detail} (offset {self.offset})"
        return f"{where}: {detail}"


class PathNotFoundError(StorageDriverError, FileNotFoundError):
    """Nothing exists at the path."""


class InvalidPathError(StorageDriverError, ValueError):
    """The path does not match the contract's path grammar."""


class InvalidOffsetError(StorageDriverError, ValueError):
    """The offset is negative or past the end of the content."""


class UnsupportedMethodError(StorageDriverError):
    """The driver does not support this operation."""


class WriterClosedError(StorageDriverError, ValueError):
    """The writer was already closed, committed or cancelled."""


class WriteConflictError(StorageDriverError):
    """Another writer continued or finished this write since this one opened; nothing was kept.

    Of concurrent writers resuming one unfinished write, exactly one succeeds; the others get
    this from ``write``, ``close`` or ``commit`` and the write stays as the winner left it.
    """


class PartNumbersExhaustedError(StorageDriverError):
    """The write has used every part number its store allows; it cannot grow any further.

    Raised instead of reusing a number (a rival's part would replace ours, or ours its); the
    write stays as its last close left it. A larger part size (``chunksize``) fits more bytes.
    """


__all__ = [
    "InvalidOffsetError",
    "InvalidPathError",
    "LayerstoreError",
    "PartNumbersExhaustedError",
    "PathNotFoundError",
    "StorageDriverError",
    "UnsupportedMethodError",
    "WriteConflictError",
    "WriterClosedError",
]
