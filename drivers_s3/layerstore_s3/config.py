"""Parameters of the ``s3`` driver: Distribution's s3 keys plus ours, defaults and validation.

An operator can copy the ``s3:`` section of a Distribution ``config.yml``; keys we do not know are
errors (``parse_params`` rejects them), never silently ignored. Ours: ``maxconcurrency``
(parts of one writer uploading at once), ``maxretries`` (handed to botocore's retry mode, as
the azure driver hands it to its SDK) and ``redirectexpiry`` (seconds a presigned redirect
URL stays valid; the same key in every layerstore driver). No I/O happens here.
"""

from __future__ import annotations

import dataclasses

from layerstore_core.objectstore import DEFAULT_REDIRECT_EXPIRY, MAX_REDIRECT_EXPIRY
from layerstore_core.params import ParameterError, check_range

MiB = 2**20
GiB = 2**30
#: S3 rejects non-final parts below this size (moto too, at complete time).
MIN_PART_SIZE = 5 * MiB
#: S3's largest part, for uploads and for copies.
MAX_PART_SIZE = 5 * GiB
#: S3's largest part count in one multipart upload.
MAX_PARTS = 10_000
#: Above this size CopyObject fails; a multipart copy is the only way.
MAX_COPY_OBJECT_SIZE = 5 * GiB
MAX_RETRIES = 20
#: Storage class value meaning "send no storage class" (Distribution's spelling).
NO_STORAGE_CLASS = "NONE"
STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER_IR",
        "EXPRESS_ONEZONE",
        NO_STORAGE_CLASS,
    }
)


@dataclasses.dataclass(frozen=True)
class S3Params:
    """Configuration of one S3 driver (keys as in Distribution's s3 storage driver)."""

    bucket: str
    region: str | None = None
    #: Custom endpoint (MinIO, R2, moto); without a scheme, ``secure`` picks http or https.
    regionendpoint: str | None = None
    #: Key prefix under which the whole tree lives.
    rootdirectory: str = ""
    #: Credentials: never in a repr (so never in a log line or a traceback's locals).
    accesskey: str | None = dataclasses.field(default=None, repr=False)
    secretkey: str | None = dataclasses.field(default=None, repr=False)
    sessiontoken: str | None = dataclasses.field(default=None, repr=False)
    secure: bool = True
    skipverify: bool = False
    #: Accepted for config compatibility; SigV2 is not offered, so it must stay true.
    v4auth: bool = True
    forcepathstyle: bool = False
    #: Size of every non-final part of a writer's multipart upload.
    chunksize: int = 10 * MiB
    #: Parts of one writer uploading at once (1: inline, one part of memory; N: N + 1 parts).
    maxconcurrency: int = 1
    multipartcopychunksize: int = 32 * MiB
    multipartcopymaxconcurrency: int = 100
    multipartcopythresholdsize: int = 32 * MiB
    encrypt: bool = False
    keyid: str | None = None
    storageclass: str = "STANDARD"
    objectacl: str | None = None
    #: Lifetime of presigned redirect URLs, in seconds.
    redirectexpiry: int = DEFAULT_REDIRECT_EXPIRY
    #: Retries of one request by botocore's ``standard`` retry mode (attempts = 1 + retries).
    maxretries: int = 5

    def validate(self) -> None:
        """Reject values S3 would refuse later, with the key's name in the message."""
        if not self.bucket:
            raise ParameterError("driver 's3': parameter 'bucket' must not be empty")
        _check_range("chunksize", self.chunksize, MIN_PART_SIZE, MAX_PART_SIZE)
        _check_range("multipartcopychunksize", self.multipartcopychunksize, MIN_PART_SIZE,
                     MAX_PART_SIZE)
        _check_range("multipartcopythresholdsize", self.multipartcopythresholdsize, 0,
                     MAX_COPY_OBJECT_SIZE)
        _check_range("maxconcurrency", self.maxconcurrency, 1, 64)
        _check_range("multipartcopymaxconcurrency", self.multipartcopymaxconcurrency, 1, 1000)
        _check_range("redirectexpiry", self.redirectexpiry, 1, MAX_REDIRECT_EXPIRY)
        _check_range("maxretries", self.maxretries, 0, MAX_RETRIES)
        if not self.v4auth:
            raise ParameterError("driver 's3': v4auth=false (SigV2) is not supported")
        if self.storageclass not in STORAGE_CLASSES:
            known = ", ".join(sorted(STORAGE_CLASSES))
            raise ParameterError(
                f"driver 's3': storageclass {self.storageclass!r} is not one of {known}"
            )
        if self.keyid and not self.encrypt:
            raise ParameterError("driver 's3': keyid needs encrypt=true")
        if (self.accesskey is None) != (self.secretkey is None):
            raise ParameterError("driver 's3': give both accesskey and secretkey, or neither")

    @property
    def endpoint_url(self) -> str | None:
        """The endpoint with a scheme, or None for AWS's own endpoints."""
        if not self.regionendpoint:
            return None
        if "://" in self.regionendpoint:
            return self.regionendpoint
        return ("https://" if self.secure else "http://") + self.regionendpoint

    @property
    def key_prefix(self) -> str:
        """The object-key prefix of the tree (``""`` or ending in ``/``)."""
        root = self.rootdirectory.strip("/")
        return f"{root}/" if root else ""


def _check_range(key: str, value: int, low: int, high: int) -> None:
    check_range("driver 's3'", key, value, low, high)
