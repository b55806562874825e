"""The start-up check that the storage is usable, through the driver contract only.

A root under a regular file, a missing bucket or bad credentials used to start fine and fail the
first push with a 500. Writing and deleting one small object under a hidden name at the driver's
root (outside the registry layout, so no walker ever sees it) proves the backend is reachable and
writable, on every driver alike, before the server accepts a connection.
"""

from __future__ import annotations

import secrets

from ..driver import StorageDriver
from ..errors import StorageDriverError
from .config import ConfigError

PROBE_PREFIX = "/.layerstore-probe-"


def check_storage(driver: StorageDriver, name: str) -> None:
    """Put and delete a probe object; a failure is a ConfigError naming the driver and why."""
    path = PROBE_PREFIX + secrets.token_hex(8)
    try:
        driver.put_content(path, b"layerstore start-up probe\n")
        driver.delete(path)
    except (StorageDriverError, OSError) as exc:
        cause = exc.__cause__ or exc
        raise ConfigError(
            f"storage.{name}: the storage is not usable (writing a probe object {path} failed: "
            f"{cause})"
        ) from None
