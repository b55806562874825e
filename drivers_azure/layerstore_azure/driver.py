"""The ``azure`` driver: one Azure Blob container (under an optional root directory).

A contract path ``/a/b`` is the blob ``<rootdirectory>/a/b``; directories are implied by name
prefixes, as in Distribution's azure driver. The contract comes from the core's object-store
base (:mod:`layerstore_core.objectstore`) over :class:`~.bucket.AzureBucket`; writes are block
blobs of staged blocks (:mod:`.blocks`), and an append blob Distribution left is continued by
:class:`~.writer.AppendBlobWriter`. Blobs that only have staged blocks are invisible to
``stat``/``list``/``walk``. Retries are the SDK's exponential retry policy (``maxretries``, 3
by default); every SDK failure is translated in ``errors.py``.

A library user may hand in an SDK client: ``AzureDriver(params, service=BlobServiceClient)``
or ``AzureDriver(params, container=ContainerClient)``; the driver then uses it as configured
(its credential, retries and sizes; ``params`` still give the container, root directory,
chunksize, maxconcurrency and redirectexpiry) and never closes it. With a ``ContainerClient``
and a token credential there are no redirects (a user delegation key needs the service client).
"""

from __future__ import annotations

import importlib
from typing import Any

from azure.core.credentials import AzureNamedKeyCredential
from azure.storage.blob import BlobServiceClient, ContainerClient

from layerstore_core.driver import FileWriter
from layerstore_core.objectstore import ObjectStoreDriver
from layerstore_core.params import ParameterError

from .bucket import AppendBlobFound, AzureBucket
from .config import AzureParams
from .writer import continue_append_blob

#: Readers fetch ranges of at least this much (small blocks need not mean small requests).
MIN_GET_SIZE = 4 * 2**20


def make_service(params: AzureParams) -> BlobServiceClient:
    """The SDK client: download sizes bounded (a reader holds one chunk), the SDK's retries."""
    get_size = max(params.chunksize, MIN_GET_SIZE)
    sizes: dict[str, Any] = {
        "max_block_size": params.chunksize,
        "max_single_get_size": get_size,
        "max_chunk_get_size": get_size,
        "retry_total": params.maxretries,
    }
    if params.connectionstring:
        return BlobServiceClient.from_connection_string(params.connectionstring, **sizes)
    if params.accountkey:
        key = AzureNamedKeyCredential(params.accountname or "", params.accountkey)
        return BlobServiceClient(params.account_url, credential=key, **sizes)
    try:
        identity = importlib.import_module("azure.identity")  # the optional ``identity`` extra
    except ImportError as exc:
        raise ParameterError(
            "driver 'azure': credential: default needs azure-identity; "
            "install it with `pip install layerstore-azure[identity]`"
        ) from exc
    credential = identity.DefaultAzureCredential()
    return BlobServiceClient(params.account_url, credential=credential, **sizes)


class AzureDriver(ObjectStoreDriver[AzureBucket]):
    """Azure Blob Storage: block blobs, SAS redirects, server-side copy for move."""

    name = "azure"
    Params = AzureParams

    def __init__(
        self,
        params: AzureParams,
        *,
        service: BlobServiceClient | None = None,
        container: ContainerClient | None = None,
    ) -> None:
        if service is not None and container is not None:
            raise ParameterError("driver 'azure': pass service= or container=, not both")
        self.params = params
        owns = service is None and container is None
        if container is None:
            service = service if service is not None else make_service(params)
            container = service.get_container_client(params.container)
        bucket = AzureBucket(
            container,
            service=service,
            chunksize=params.chunksize,
            maxconcurrency=params.maxconcurrency,
            redirectexpiry=params.redirectexpiry,
            owns=owns,
        )
        super().__init__(bucket, params.prefix)

    def _writer(self, path: str, append: bool) -> FileWriter:
        """The core's PartWriter, or an AppendBlobWriter at an append blob (mixed fleets)."""
        try:
            return super()._writer(path, append)
        except AppendBlobFound as found:
            return continue_append_blob(found.blob, self.name, path, self.params.chunksize)
