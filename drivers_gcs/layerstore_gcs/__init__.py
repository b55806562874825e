"""Google Cloud Storage driver for layerstore: ``load_driver("gcs", bucket=...)``."""

from .config import GCSParams
from .driver import GCSDriver
from .errors import UploadSessionExpiredError

__all__ = ["GCSDriver", "GCSParams", "UploadSessionExpiredError"]
