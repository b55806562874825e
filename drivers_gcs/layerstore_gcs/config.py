"""Parameters of the ``gcs`` driver: Distribution's gcs keys plus what emulators and fleets need.

Distribution's keys: ``bucket``, ``keyfile`` (a service-account JSON file; without it google-auth's
application default credentials are used), ``rootdirectory`` and ``chunksize``. Ours: ``endpoint``
(emulators and private endpoints — Distribution hardcodes the upload host, so its driver cannot be
pointed at an emulator), ``project``, ``anonymous`` (send requests without credentials, as
emulators expect; a keyfile is then used only to sign URLs), explicit ``timeout`` and a bounded
retry policy (the client's default retry turns a dropped connection into a two-minute stall),
``redirectexpiry`` (seconds a signed redirect URL stays valid; the same key in every layerstore
driver) and ``batchdelete`` (accepted for old configurations; see its comment). No I/O here.
"""

from __future__ import annotations

import dataclasses
import re

from layerstore_core.objectstore import DEFAULT_REDIRECT_EXPIRY, MAX_REDIRECT_EXPIRY
from layerstore_core.params import ParameterError, check_range

#: Resumable-upload chunks must be multiples of this (GCS rejects other non-final chunk sizes).
CHUNK_MULTIPLE = 256 * 2**10
DEFAULT_CHUNK_SIZE = 16 * 2**20
#: A writer holds one chunk in memory: keep that bounded.
MAX_CHUNK_SIZE = 1024 * 2**20
MAX_CHUNK_RETRIES = 20
_OWNER = "driver 'gcs'"
#: A key component of the root directory: the path grammar's components.
_ROOT_COMPONENT = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclasses.dataclass(frozen=True)
class GCSParams:
    """Configuration of one ``gcs`` driver; keys are case-insensitive, as in Distribution."""

    bucket: str
    keyfile: str | None = None
    rootdirectory: str = ""
    #: Bytes per resumable-upload chunk: the writer's memory bound (readers use at least 4 MiB).
    chunksize: int = DEFAULT_CHUNK_SIZE
    endpoint: str | None = None
    project: str | None = None
    anonymous: bool = False
    #: Seconds allowed for one HTTP request (connect and each read).
    timeout: float = 60.0
    #: Seconds the SDK may spend retrying one call before giving up.
    retrydeadline: float = 30.0
    #: Extra attempts to send one upload chunk after a transient failure.
    chunkretries: int = 3
    #: Lifetime of redirect (V4 signed) URLs, in seconds.
    redirectexpiry: int = DEFAULT_REDIRECT_EXPIRY
    #: Accepted, no longer used: the SDK's public batch API cannot tell which deletes of a
    #: batch failed, so objects are deleted one request each (under the SDK's retry).
    batchdelete: bool = True

    def validate(self) -> None:
        """Reject values GCS or this driver cannot work with, naming the key; no I/O."""
        if not self.bucket:
            raise ParameterError("driver 'gcs': parameter 'bucket' must not be empty")
        check_range(_OWNER, "chunksize", self.chunksize, CHUNK_MULTIPLE, MAX_CHUNK_SIZE)
        if self.chunksize % CHUNK_MULTIPLE:
            raise ParameterError(
                f"driver 'gcs': parameter 'chunksize' must be a multiple of {CHUNK_MULTIPLE} "
                f"(256 KiB), got {self.chunksize}"
            )
        if self.timeout <= 0 or self.retrydeadline < 0:
            raise ParameterError(
                "driver 'gcs': parameter 'timeout' must be > 0 and 'retrydeadline' >= 0"
            )
        check_range(_OWNER, "chunkretries", self.chunkretries, 0, MAX_CHUNK_RETRIES)
        check_range(_OWNER, "redirectexpiry", self.redirectexpiry, 1, MAX_REDIRECT_EXPIRY)
        if self.endpoint is not None and not re.match(r"^https?://[^/]+", self.endpoint):
            raise ParameterError(
                f"driver 'gcs': parameter 'endpoint' must be an http(s) URL, got {self.endpoint!r}"
            )
        self.root  # noqa: B018 - validates rootdirectory

    @property
    def root(self) -> str:
        """The key prefix of the root directory: ``""`` or ``"a/b/"``."""
        parts = [p for p in self.rootdirectory.strip("/").split("/") if p]
        for part in parts:
            if not _ROOT_COMPONENT.match(part) or part in (".", ".."):
                raise ParameterError(
                    f"driver 'gcs': bad component {part!r} in 'rootdirectory' "
                    f"{self.rootdirectory!r}"
                )
        return "".join(p + "/" for p in parts)

