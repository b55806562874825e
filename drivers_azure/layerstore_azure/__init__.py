"""layerstore's ``azure`` driver (azure-storage-blob): ``load_driver("azure", container=...)``."""

from .bucket import AzureBucket
from .config import AzureParams
from .driver import AzureDriver

__all__ = ["AzureBucket", "AzureDriver", "AzureParams"]
