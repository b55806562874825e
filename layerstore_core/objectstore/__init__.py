"""The object-store base: build a storage driver for a flat-namespace store from primitives.

A cloud driver implements a :class:`Bucket` (head, ranged get, put, one page of a listing,
delete many, server-side copy, and a multipart upload: start, upload part, complete, abort)
and subclasses :class:`ObjectStoreDriver`; the core derives ``list``, ``stat``, ``walk``,
``move``, ``delete``, ``reader`` and the resumable writer (:class:`PartWriter`) from them, once
for every cloud. See ``docs/DESIGN.md`` (section 5) and the S3, GCS and Azure drivers.
"""

from .bucket import (
    DEFAULT_REDIRECT_EXPIRY,
    MAX_REDIRECT_EXPIRY,
    Bucket,
    ByteStream,
    ListPage,
    ObjectInfo,
    Part,
)
from .driver import ObjectStoreDriver
from .partwriter import PartWriter, UploadState, parts_in_order, state_key
from .tree import child_name, child_names, children, is_side_key, visible, walk_entries

__all__ = [
    "DEFAULT_REDIRECT_EXPIRY",
    "MAX_REDIRECT_EXPIRY",
    "Bucket",
    "ByteStream",
    "ListPage",
    "ObjectInfo",
    "ObjectStoreDriver",
    "Part",
    "PartWriter",
    "UploadState",
    "child_name",
    "child_names",
    "children",
    "is_side_key",
    "parts_in_order",
    "state_key",
    "visible",
    "walk_entries",
]
