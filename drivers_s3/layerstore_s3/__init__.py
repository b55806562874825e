"""layerstore's ``s3`` driver (boto3): ``load_driver("s3", bucket=...)``."""

from .config import S3Params
from .driver import S3Driver
from .writer import S3Writer

__all__ = ["S3Driver", "S3Params", "S3Writer"]
