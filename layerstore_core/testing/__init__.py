"""Test support shipped with the core: the shared conformance suite and the Backend handle.

Driver packages import from here; see :mod:`layerstore_core.testing.backend`.
"""

from .backend import Backend

__all__ = ["Backend"]
