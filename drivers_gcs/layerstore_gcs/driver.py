"""The ``gcs`` driver: layerstore's storage contract on a Google Cloud Storage bucket.

The contract is derived by :class:`~layerstore_core.objectstore.ObjectStoreDriver` from the
primitives in :mod:`.bucket`; this module only builds the client. Credentials, in order: a
service-account ``keyfile``; none with ``anonymous: true`` (emulators) or when
``STORAGE_EMULATOR_HOST`` is set (as the GCS SDK itself does; the variable also names the
endpoint unless ``endpoint`` is given); else google-auth's application default credentials.

A library user may hand in an already-built client: ``GCSDriver(params, client=...)`` (a
``google.cloud.storage.Client``); the driver then uses its credentials and endpoint as they
are (``keyfile`` still signs redirect URLs) and does not close it.
"""

from __future__ import annotations

import os
from typing import Any

import google.auth
import google.auth.exceptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import storage  # type: ignore[import-untyped]  # ships no py.typed
from google.oauth2 import service_account

from layerstore_core.objectstore import ObjectStoreDriver
from layerstore_core.params import ParameterError

from .bucket import GCSBucket
from .config import GCSParams
from .errors import translated

_SCOPES = ["https://www.googleapis.com/auth/devstorage.read_write"]
#: The GCS SDK's variable naming an emulator (scheme included); it implies no credentials.
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
_NO_CREDENTIALS = (
    "driver 'gcs': no Google credentials found: set parameter 'keyfile' to a service-account "
    "JSON file (or provide application default credentials, e.g. GOOGLE_APPLICATION_CREDENTIALS)"
    ", or 'anonymous: true' (or STORAGE_EMULATOR_HOST) for an emulator"
)


def _credentials(params: GCSParams) -> tuple[Credentials, str | None]:
    """(credentials for requests, project) from the parameters and environment; no network."""
    if params.anonymous or (os.environ.get(EMULATOR_ENV) and not params.keyfile):
        anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]  # google-auth untyped
        return anonymous, params.project or "<none>"
    if params.keyfile:
        with translated():
            creds = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                params.keyfile, scopes=_SCOPES
            )
        return creds, params.project or creds.project_id
    try:
        creds, project = google.auth.default(scopes=_SCOPES)
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise ParameterError(_NO_CREDENTIALS) from exc
    return creds, params.project or project


def _signer(params: GCSParams) -> service_account.Credentials | None:
    """Load the service-account key that signs redirect URLs, when one is configured."""
    if not params.keyfile:
        return None
    with translated():
        key: service_account.Credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
            params.keyfile
        )
    return key


def build_client(params: GCSParams) -> Any:
    """A storage client for the parameters (``endpoint`` wins over STORAGE_EMULATOR_HOST)."""
    creds, project = _credentials(params)
    options = {"api_endpoint": params.endpoint} if params.endpoint else None
    with translated():
        return storage.Client(project=project, credentials=creds, client_options=options)


class GCSDriver(ObjectStoreDriver[GCSBucket]):
    """Storage driver for Google Cloud Storage (and its emulators, through ``endpoint``)."""

    name = "gcs"
    Params = GCSParams

    def __init__(self, params: GCSParams, client: Any = None) -> None:
        self.params = params
        owned = client is None
        if client is None:
            client = build_client(params)
        endpoint = params.endpoint or os.environ.get(EMULATOR_ENV) or None
        bucket = GCSBucket(
            client, params, owned=owned, signer=_signer(params), signing_endpoint=endpoint
        )
        super().__init__(bucket, params.root)

    @property
    def client(self) -> Any:
        """The ``google.cloud.storage.Client`` in use."""
        return self.bucket.client

    @property
    def root(self) -> str:
        """The key prefix of the root directory: ``""`` or ``"a/b/"``."""
        return self.prefix
