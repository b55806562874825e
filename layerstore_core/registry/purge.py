"""Purge of stale uploads, for the CLI and the server: aborts backend multipart state too.

An upload is stale when neither its start nor its last saved chunk is within the age. The last
chunk counts because a long push of a large blob may outlive the age (Distribution looks at the
start only and can purge an upload still receiving data); a ``close()`` writes a hash state, a
committed object whose modification time every backend reports — except in an upload's first
:data:`~.uploads.HASH_STATE_AFTER`, when the HTTP API carries the state in its token instead, so
an upload counts as active until that long after its start (or the age, if shorter: ``--age 0s``
purges every upload).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from .. import observe
from ..driver import StorageDriver
from ..errors import PathNotFoundError
from ..progress import NoProgress, Progress
from . import paths as p
from .errors import BlobUploadInvalidError
from .leases import KeepAlive, Lease
from .registry import Registry, repository_names
from .uploads import HASH_STATE_AFTER, abort_upload, parse_started_at

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class PurgedUpload:
    """One upload that was (or, in a dry run, would be) purged."""

    repository: str
    id: str
    started_at: dt.datetime


def _started_at(driver: StorageDriver, name: str, upload_id: str) -> dt.datetime:
    """When the upload started; without a readable ``startedat``, when it was last touched."""
    try:
        return parse_started_at(
            driver.get_content(p.path_for(p.UploadStartedAtPath(name, upload_id)))
        )
    except (PathNotFoundError, BlobUploadInvalidError):
        return driver.stat(p.path_for(p.UploadPath(name, upload_id))).modified


def _last_activity(
    driver: StorageDriver, name: str, upload_id: str, started: dt.datetime,
    quiet: dt.timedelta,
) -> dt.datetime:
    """When the upload last saved a chunk (its newest hash state), or ``started + quiet``.

    ``quiet``: how long after its start an upload may take chunks that save no hash state.
    """
    latest = started + quiet
    try:
        states = driver.list(p.path_for(p.UploadHashStatesPath(name, upload_id, "sha256")))
    except PathNotFoundError:
        return latest
    for path in states:
        try:
            latest = max(latest, driver.stat(path).modified)
        except PathNotFoundError:  # pruned by a save meanwhile: a newer one exists
            continue
    return latest


def purge_uploads(
    target: StorageDriver | Registry,
    older_than: dt.timedelta,
    dry_run: bool = False,
    *,
    now: dt.datetime | None = None,
    lease: Lease | None = None,
    progress: Progress | None = None,
) -> list[PurgedUpload]:
    """Cancel every upload idle for more than ``older_than``; returns what was purged.

    Under a ``lease`` (the fleet's purger) it is renewed between uploads; when it is lost this
    raises :class:`.LeaseLostError` and purges nothing more.
    """
    driver = target.driver if isinstance(target, Registry) else target
    cutoff = (now or dt.datetime.now(dt.UTC)) - older_than
    keep_alive = KeepAlive(lease) if lease is not None else None
    purged: list[PurgedUpload] = []
    show = progress or NoProgress()
    show.phase("listing repositories")
    names = repository_names(driver)
    show.phase("checking repositories", len(names))
    for name in names:
        show.advance()
        try:
            uploads = driver.list(p.path_for(p.UploadsPath(name)))
        except PathNotFoundError:
            continue
        for path in uploads:
            if keep_alive is not None:
                keep_alive()
            upload_id = path.rsplit("/", 1)[-1]
            try:
                started = _started_at(driver, name, upload_id)
                quiet = min(HASH_STATE_AFTER, older_than)
                if _last_activity(driver, name, upload_id, started, quiet) >= cutoff:
                    continue
            except PathNotFoundError:  # finished or purged meanwhile
                continue
            purged.append(PurgedUpload(name, upload_id, started))
            if not dry_run:
                log.info("purging upload %s/%s started %s", name, upload_id, started)
                abort_upload(driver, name, upload_id)
    observe.event("upload.purge", len(purged))
    return purged
