"""Parameters of the ``azure`` driver: Distribution's azure keys plus ours. No I/O here.

Distribution's keys: ``accountname``, ``accountkey``, ``container``, ``realm`` (the endpoint
suffix, ``core.windows.net`` by default), ``rootdirectory``. Ours: ``connectionstring``,
``endpoint`` (Azurite, private endpoints, sovereign clouds), ``credential: default``
(DefaultAzureCredential, needs the ``identity`` extra), ``chunksize`` (the base block size),
``maxconcurrency`` (blocks staged at once per writer), ``redirectexpiry`` (seconds a SAS
redirect URL stays valid; the same key in every layerstore driver) and ``maxretries`` (handed
to the SDK's retry policy).

Exactly one way to authenticate must be configured: a connection string, an account key, or
``credential: default``.
"""

from __future__ import annotations

import dataclasses
import re

from layerstore_core.objectstore import DEFAULT_REDIRECT_EXPIRY, MAX_REDIRECT_EXPIRY
from layerstore_core.params import ParameterError, check_range

MiB = 2**20
#: Azure's largest staged block (service version 2019-12-12 and later).
MAX_BLOCK_SIZE = 4000 * MiB
#: Smallest base block size we accept; tiny blocks burn the 50,000-block budget.
MIN_CHUNK_SIZE = 64 * 1024
DEFAULT_CHUNK_SIZE = 4 * MiB
#: One block staged at a time keeps a writer to one block of memory; raise it for throughput.
DEFAULT_MAX_CONCURRENCY = 1
MAX_CONCURRENCY = 64
MAX_RETRIES = 20

_CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
CREDENTIAL_CHOICES = ("default",)
OWNER = "driver 'azure'"


@dataclasses.dataclass(frozen=True)
class AzureParams:
    """Configuration of one Azure Blob container used as a registry's storage."""

    container: str
    accountname: str | None = None
    accountkey: str | None = None
    realm: str = "core.windows.net"
    rootdirectory: str = ""
    connectionstring: str | None = None
    endpoint: str | None = None
    credential: str | None = None
    chunksize: int = DEFAULT_CHUNK_SIZE
    maxconcurrency: int = DEFAULT_MAX_CONCURRENCY
    redirectexpiry: int = DEFAULT_REDIRECT_EXPIRY
    #: Retries of one request by the SDK's own exponential retry policy (its default is 3).
    maxretries: int = 3

    def __repr__(self) -> str:
        """Keep secrets out of logs and tracebacks."""
        shown = {
            f.name: ("***" if f.name in ("accountkey", "connectionstring") and v else v)
            for f in dataclasses.fields(self)
            for v in [getattr(self, f.name)]
        }
        return "AzureParams(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def prefix(self) -> str:
        """The blob-name prefix for the root directory: ``""`` or ``"a/b"`` (no slashes around)."""
        return self.rootdirectory.strip("/")

    @property
    def account_url(self) -> str:
        """The blob service URL when no connection string is given."""
        if self.endpoint:
            return self.endpoint.rstrip("/")
        return f"https://{self.accountname}.blob.{self.realm}"

    def validate(self) -> None:
        """Reject configurations that cannot work, before any request is made."""
        if not _CONTAINER.match(self.container):
            raise ParameterError(
                f"driver 'azure': container {self.container!r} is not a valid container name "
                "(3-63 of a-z, 0-9 and single '-', starting and ending alphanumeric)"
            )
        self._validate_auth()
        check_range(OWNER, "chunksize", self.chunksize, MIN_CHUNK_SIZE, MAX_BLOCK_SIZE)
        check_range(OWNER, "maxconcurrency", self.maxconcurrency, 1, MAX_CONCURRENCY)
        check_range(OWNER, "redirectexpiry", self.redirectexpiry, 1, MAX_REDIRECT_EXPIRY)
        check_range(OWNER, "maxretries", self.maxretries, 0, MAX_RETRIES)
        if any(part in (".", "..") for part in self.prefix.split("/")):
            raise ParameterError("driver 'azure': rootdirectory must not contain '.' or '..'")

    def _validate_auth(self) -> None:
        sources = [
            name
            for name, given in (
                ("connectionstring", self.connectionstring),
                ("accountkey", self.accountkey),
                ("credential", self.credential),
            )
            if given
        ]
        if len(sources) != 1:
            raise ParameterError(
                "driver 'azure': configure exactly one of connectionstring, accountkey or "
                f"credential: default (got {', '.join(sources) or 'none'})"
            )
        if self.credential and self.credential not in CREDENTIAL_CHOICES:
            raise ParameterError(
                f"driver 'azure': credential must be one of {CREDENTIAL_CHOICES}, "
                f"got {self.credential!r}"
            )
        if self.connectionstring:
            if self.accountname or self.endpoint:
                raise ParameterError(
                    "driver 'azure': a connectionstring already names the account and endpoint; "
                    "drop accountname/endpoint"
                )
            return
        if not self.accountname or not _ACCOUNT.match(self.accountname):
            raise ParameterError(
                f"driver 'azure': accountname {self.accountname!r} must be 3-24 of a-z and 0-9"
            )

