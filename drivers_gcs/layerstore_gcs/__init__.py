"""layerstore's ``gcs`` driver (google-cloud-storage): ``load_driver("gcs", bucket=...)``."""

from .bucket import GCSBucket
from .config import GCSParams
from .driver import GCSDriver
from .errors import UploadSessionExpiredError

__all__ = ["GCSBucket", "GCSDriver", "GCSParams", "UploadSessionExpiredError"]
