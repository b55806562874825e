"""Purge of stale uploads on every backend."""

from __future__ import annotations

import datetime as dt

import pytest

from layerstore_core import BlobUploadUnknownError, Registry, purge_uploads
from layerstore_core.registry import paths as p
from layerstore_core.registry.uploads import format_started_at
from layerstore_core.testing import Backend


def _age(registry: Registry, repo: str, upload_id: str, days: int) -> None:
    """Backdate the start; with no hash state left, nothing shows later activity."""
    when = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    path = p.path_for(p.UploadStartedAtPath(repo, upload_id))
    registry.driver.put_content(path, format_started_at(when))
    if days:
        registry.driver.delete(p.path_for(p.UploadHashStatesPath(repo, upload_id, "sha256")))


def test_purge_stale_uploads(any_backend: Backend) -> None:
    registry = Registry(any_backend.make())
    ids = {}
    for repo, days in (("a/old", 10), ("b", 10), ("a/young", 0)):
        upload = registry.repository(repo).blobs.create_upload()
        upload.write(b"partial data")
        upload.close()
        _age(registry, repo, upload.id, days)
        ids[repo] = upload.id
    dry = purge_uploads(registry, dt.timedelta(days=7), dry_run=True)
    assert sorted((u.repository, u.id) for u in dry) == [("a/old", ids["a/old"]), ("b", ids["b"])]
    assert registry.repository("b").blobs.resume_upload(ids["b"]).offset == 12  # untouched

    purged = purge_uploads(registry.driver, dt.timedelta(days=7))
    assert sorted(u.repository for u in purged) == ["a/old", "b"]
    for repo in ("a/old", "b"):
        with pytest.raises(BlobUploadUnknownError):
            registry.repository(repo).blobs.resume_upload(ids[repo])
    assert registry.repository("a/young").blobs.resume_upload(ids["a/young"]).offset == 12
    leftovers = [i.path for i in registry.driver.walk("/") if not i.is_dir and "_uploads" in i.path]
    assert leftovers and all("/a/young/" in path for path in leftovers)
    assert registry.purge_uploads(dt.timedelta(days=7)) == []


def test_purge_spares_an_old_upload_still_receiving_chunks(any_backend: Backend) -> None:
    registry = Registry(any_backend.make())
    blobs = registry.repository("long/push").blobs
    upload = blobs.create_upload()
    upload.write(b"first chunk")
    upload.close()
    upload = blobs.resume_upload(upload.id)
    upload.write(b", a chunk just now")
    upload.close()  # saves a fresh hash state: the upload is in use
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    started = p.path_for(p.UploadStartedAtPath("long/push", upload.id))
    registry.driver.put_content(started, format_started_at(long_ago))
    assert purge_uploads(registry, dt.timedelta(days=7)) == []
    assert blobs.resume_upload(upload.id).offset == 29
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=8)
    assert [u.id for u in purge_uploads(registry, dt.timedelta(days=7), now=later)] == [upload.id]


def test_purge_without_uploads(any_backend: Backend) -> None:
    assert purge_uploads(Registry(any_backend.make()), dt.timedelta(0)) == []
