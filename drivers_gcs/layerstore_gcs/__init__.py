"""layerstore's ``gcs`` driver (google-cloud-storage): ``load_driver("gcs", bucket=...)``."""

from .config import GCSParams
from .driver import GCSDriver
from .errors import UploadSessionExpiredError
from .writer import GCSWriter

__all__ = ["GCSDriver", "GCSParams", "GCSWriter", "UploadSessionExpiredError"]
