"""layerstore's ``azure`` driver (azure-storage-blob): ``load_driver("azure", container=...)``."""

from .config import AzureParams
from .driver import AzureDriver
from .writer import AzureWriter

__all__ = ["AzureDriver", "AzureParams", "AzureWriter"]
