"""Driver discovery through the ``layerstore.drivers`` entry-point group.

Loading fails helpfully: an unknown name lists what is installed and what to ``pip install``;
an import failure names the entry point and its distribution; two distributions claiming one
name is an error; the loaded object is checked to be a StorageDriver subclass.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .driver import StorageDriver
from .errors import LayerstoreError

GROUP = "layerstore.drivers"

#: Where the drivers we know of but do not ship in the core come from.
KNOWN_PACKAGES = {"s3": "layerstore-s3", "gcs": "layerstore-gcs", "azure": "layerstore-azure"}


def install_hint(name: str) -> str:
    """How to install the package of the known driver ``name``, from PyPI or a checkout."""
    package = KNOWN_PACKAGES[name]
    return (f"install it with `pip install {package}` (from a checkout: "
            f"`scripts/wheelhouse` then `pip install --find-links dist {package}`)")


class DriverNotFoundError(LayerstoreError, LookupError):
    """No installed distribution provides the requested driver."""


class DriverLoadError(LayerstoreError, ImportError):
    """A driver's entry point exists but could not be loaded."""


def _entry_points() -> dict[str, list[EntryPoint]]:
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, []).append(ep)
    return found


def available_drivers() -> list[str]:
    """Names of the installed drivers, sorted."""
    return sorted(_entry_points())


def _dist_name(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "?"


def driver_class(name: str) -> type[StorageDriver]:
    """Return the driver class registered under ``name``."""
    found = _entry_points()
    candidates = found.get(name, [])
    if not candidates:
        installed = ", ".join(sorted(found)) or "none"
        advice = f"; {install_hint(name)}" if name in KNOWN_PACKAGES else ""
        raise DriverNotFoundError(
            f"no storage driver named {name!r} (installed: {installed}){advice}"
        )
    dists = {_dist_name(ep) for ep in candidates}
    if len(dists) > 1:
        raise DriverLoadError(f"driver {name!r} is claimed by several packages: {sorted(dists)}")
    ep = candidates[0]
    try:
        cls = ep.load()
    except Exception as exc:
        raise DriverLoadError(
            f"driver {name!r} ({ep.value}, from {_dist_name(ep)}) failed to import: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, StorageDriver)):
        raise DriverLoadError(f"driver {name!r} ({ep.value}) is not a StorageDriver subclass")
    return cls


def load_driver(name: str, **params: Any) -> StorageDriver:
    """Build the driver registered as ``name`` from its Distribution-style parameters."""
    return driver_class(name).from_params(params)
