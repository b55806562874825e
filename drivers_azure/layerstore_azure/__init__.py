"""The ``azure`` storage driver: Azure Blob Storage through azure-storage-blob."""

from .config import AzureParams
from .driver import AzureDriver

__all__ = ["AzureDriver", "AzureParams"]
