"""layerstore's ``s3`` driver (boto3): ``load_driver("s3", bucket=...)``."""

from .bucket import S3Bucket
from .config import S3Params
from .driver import S3Driver

__all__ = ["S3Bucket", "S3Driver", "S3Params"]
