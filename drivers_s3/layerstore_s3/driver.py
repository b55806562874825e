"""The S3 storage driver (boto3): the core's object-store driver over an :class:`S3Bucket`.

Path ``/a/b`` is key ``<rootdirectory>/a/b``; directories are implied by key prefixes; an
unfinished write keeps its state (upload id, parts, the tail short of a 5 MiB part) in the
object ``<key>~state`` (see :mod:`layerstore_core.objectstore`). Retries and timeouts are
botocore's (``standard`` retry mode), set once in :func:`make_client`.

A library user may hand in a ready client, ``S3Driver(params, client=boto3.client("s3"))``, or
a session, ``S3Driver(params, session=boto3.Session(profile_name="registry"))`` (as s3fs takes
``session=``): a handed-in client is used as it is and never closed by the driver; a session
supplies credentials and region, and the driver builds (and closes) its client from it with
the parameters' endpoint, addressing style, TLS and retry settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from layerstore_core.objectstore import ObjectStoreDriver

from .bucket import S3Bucket
from .config import S3Params

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_REGION = "us-east-1"
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60


def make_client(params: S3Params, session: boto3.session.Session | None = None) -> S3Client:
    """Build a boto3 S3 client for ``params`` (SigV4, botocore's standard retries and timeouts).

    Credentials come from ``session`` when given, else from the parameters (or boto3's own
    chain when they are empty). TLS verification uses botocore's own rules (``AWS_CA_BUNDLE``
    included) unless ``skipverify``; a plain-http endpoint never touches the bundle.
    """
    if session is None:
        session = boto3.session.Session(
            aws_access_key_id=params.accesskey,
            aws_secret_access_key=params.secretkey,
            aws_session_token=params.sessiontoken,
            region_name=params.region,
        )
    config = Config(
        signature_version="s3v4",
        retries={"mode": "standard", "total_max_attempts": params.maxretries + 1},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        max_pool_connections=max(10, params.maxconcurrency * 2,
                                 min(params.multipartcopymaxconcurrency, 100)),
        s3={"addressing_style": "path" if params.forcepathstyle else "auto"},
        user_agent_extra="layerstore-s3",
    )
    return session.client(
        "s3",
        region_name=params.region or session.region_name or DEFAULT_REGION,
        endpoint_url=params.endpoint_url,
        use_ssl=params.secure,  # only for AWS's own endpoints; a regionendpoint has a scheme
        verify=False if params.skipverify else None,
        config=config,
    )


class S3Driver(ObjectStoreDriver[S3Bucket]):
    """Stores files as objects in one bucket under ``rootdirectory``."""

    name = "s3"
    Params = S3Params

    def __init__(
        self,
        params: S3Params,
        *,
        client: S3Client | None = None,
        session: boto3.session.Session | None = None,
    ) -> None:
        self.params = params
        owns = client is None
        if client is None:
            client = make_client(params, session)
        super().__init__(S3Bucket(client, params, owns_client=owns), params.key_prefix)
