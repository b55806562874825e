"""The cache's own state in storage: freshness records and fetch leases.

It lives outside Distribution's tree (as Distribution's ``/scheduler-state.json`` does), so the
v2 layout stays byte for byte what Distribution writes::

    /layerstore/proxy
    ├── leases/<alg>/<hex>                       who fetches a blob now (JSON: owner, expires)
    └── repositories/<name>/
        ├── _tags/<tag>                          {"digest", "checked"}: last revalidation
        └── _manifests/<alg>/<hex>               {"fetched"}: when a manifest was cached

Repository name components never start with ``_``, so a name and its records cannot collide.
Only what the cache fetched gets a record: pushed content is never expired.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Iterator

from ..driver import StorageDriver
from ..errors import PathNotFoundError

log = logging.getLogger(__name__)

ROOT = "/layerstore/proxy"
#: A lease not renewed for this long is taken to be abandoned (its holder died), seconds.
LEASE_TTL = 60.0
#: The holder renews its lease this often while it fetches, seconds.
LEASE_RENEW = 15.0


def _split(digest: str) -> tuple[str, str]:
    alg, _, hex_ = digest.partition(":")
    return alg, hex_


def lease_path(digest: str) -> str:
    alg, hex_ = _split(digest)
    return f"{ROOT}/leases/{alg}/{hex_}"


def tag_record_path(name: str, tag: str) -> str:
    return f"{ROOT}/repositories/{name}/_tags/{tag}"


def manifest_record_path(name: str, digest: str) -> str:
    alg, hex_ = _split(digest)
    return f"{ROOT}/repositories/{name}/_manifests/{alg}/{hex_}"


@dataclasses.dataclass(frozen=True)
class TagRecord:
    """The digest a cached tag named at its last check against the upstream, and when."""

    digest: str
    checked: float


def _read_json(driver: StorageDriver, path: str) -> dict[str, object] | None:
    try:
        doc = json.loads(driver.get_content(path))
    except PathNotFoundError:
        return None
    except ValueError:
        log.warning("ignoring damaged cache record %s", path)
        return None
    return doc if isinstance(doc, dict) else None


def read_tag(driver: StorageDriver, name: str, tag: str) -> TagRecord | None:
    doc = _read_json(driver, tag_record_path(name, tag))
    if doc is None:
        return None
    digest, checked = doc.get("digest"), doc.get("checked")
    if not isinstance(digest, str) or not isinstance(checked, (int, float)):
        return None
    return TagRecord(digest, float(checked))


def write_tag(driver: StorageDriver, name: str, tag: str, digest: str) -> None:
    doc = {"digest": digest, "checked": time.time()}
    driver.put_content(tag_record_path(name, tag), json.dumps(doc).encode())


def write_manifest(driver: StorageDriver, name: str, digest: str) -> None:
    doc = {"fetched": time.time()}
    driver.put_content(manifest_record_path(name, digest), json.dumps(doc).encode())


def manifest_fetched(driver: StorageDriver, name: str, digest: str) -> float | None:
    doc = _read_json(driver, manifest_record_path(name, digest))
    fetched = doc.get("fetched") if doc else None
    return float(fetched) if isinstance(fetched, (int, float)) else None


def walk_records(driver: StorageDriver) -> Iterator[tuple[str, str, str]]:
    """``(kind, name, key)`` of every record: ``(tag, name, tag)``, ``(manifest, name, digest)``."""
    top = f"{ROOT}/repositories/"
    try:
        infos = list(driver.walk(f"{ROOT}/repositories"))
    except PathNotFoundError:
        return
    for info in infos:
        if info.is_dir or not info.path.startswith(top):
            continue
        rest = info.path[len(top):]
        if "/_tags/" in rest:
            name, _, tag = rest.partition("/_tags/")
            yield "tag", name, tag
        elif "/_manifests/" in rest:
            name, _, key = rest.partition("/_manifests/")
            alg, _, hex_ = key.partition("/")
            yield "manifest", name, f"{alg}:{hex_}"


class Lease:
    """A claim on fetching one blob, shared by every process on the storage.

    Taken with the driver's atomic create (:meth:`StorageDriver.put_content_if_absent`); renewed
    while held; one whose deadline passed is broken, after re-reading that it is unchanged (two
    breakers racing may both delete, and then only one create wins).

    Not :class:`~..registry.leases.StorageLease` on purpose: that one guards deletes (gc, the
    upload purger), so it waits out a settle time and refuses a second holder. This one is one
    object per digest, taken on a client's request path (no second of settling per fetch),
    renewed every 15 s while the blob streams, and polled by waiters; losing a race costs only a
    second fetch of the same content-addressed, digest-verified blob, never data.
    """

    def __init__(self, driver: StorageDriver, digest: str) -> None:
        self._driver = driver
        self.path = lease_path(digest)
        self.owner = uuid.uuid4().hex
        self.renewed = 0.0

    def _doc(self) -> bytes:
        return json.dumps({"owner": self.owner, "expires": time.time() + LEASE_TTL}).encode()

    def try_acquire(self) -> bool:
        """Take the lease; False while another holder has it (or just had it)."""
        if self._driver.put_content_if_absent(self.path, self._doc()):
            self.renewed = time.monotonic()
            return True
        self.held_elsewhere()  # breaks an abandoned lease, so the next try can win
        return False

    def held_elsewhere(self) -> bool:
        """Whether another live holder has the lease; an abandoned one is broken (False)."""
        try:
            raw = self._driver.get_content(self.path)
        except PathNotFoundError:
            return False
        try:
            expires = float(json.loads(raw)["expires"])
        except (ValueError, KeyError, TypeError):
            expires = 0.0
        if expires > time.time():
            return True
        log.warning("breaking the abandoned fetch lease %s", self.path)
        try:
            if self._driver.get_content(self.path) == raw:
                self._driver.delete(self.path)
        except PathNotFoundError:
            pass
        return False

    def due(self) -> bool:
        """Whether :meth:`renew` would write (a clock read: cheap per chunk, on any thread)."""
        return time.monotonic() - self.renewed >= LEASE_RENEW

    def renew(self) -> None:
        """Push the deadline out when due (a storage write every :data:`LEASE_RENEW` s)."""
        if self.due():
            self._driver.put_content(self.path, self._doc())
            self.renewed = time.monotonic()

    def release(self) -> None:
        try:
            self._driver.delete(self.path)
        except PathNotFoundError:
            pass
