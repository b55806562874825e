"""Garbage collection on the storage layout alone, safe while registries serve pushes.

``collect_garbage`` (also ``Registry.collect_garbage`` and ``layerstore gc``) marks from the
manifests, spares anything a push in progress linked, and deletes the rest in batches; one
collector runs at a time across a fleet (a :class:`Lease` from ``registry/leases.py``;
``GCBusyError`` is its ``LeaseBusyError``). See docs/DESIGN.md.
"""

from ..registry.leases import Lease, LeaseLostError, StorageLease
from ..registry.leases import LeaseBusyError as GCBusyError
from .collector import DEFAULT_GRACE, collect_garbage
from .report import GCReport, NoProgress, Progress
from .retention import RetentionError, RetentionPolicy, parse_policies
from .stats import GCStats

__all__ = [
    "DEFAULT_GRACE",
    "GCBusyError",
    "GCReport",
    "GCStats",
    "Lease",
    "LeaseLostError",
    "NoProgress",
    "Progress",
    "RetentionError",
    "RetentionPolicy",
    "StorageLease",
    "collect_garbage",
    "parse_policies",
]
