"""From what was marked to what may go: blobs, the links naming them, untagged manifests."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping

from ..registry import paths as p
from .mark import MarkResult
from .scan import BlobInfo, RepoScan


@dataclasses.dataclass
class Plan:
    """Candidates for deletion; the sweep may still spare some (see ``sweep.rescue``)."""

    #: Unmarked blobs whose data and every link to them are older than the cutoff.
    blobs: dict[str, BlobInfo] = dataclasses.field(default_factory=dict)
    #: digest → repositories whose layer link names it (candidates and dangling links).
    links: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    #: (repository, digest) of untagged manifest revisions to delete.
    manifests: set[tuple[str, str]] = dataclasses.field(default_factory=set)
    #: Blobs per ``blobs/<alg>/<xx>`` directory, to choose how to re-check a batch.
    dir_sizes: dict[str, int] = dataclasses.field(default_factory=dict)

    def doomed_digests(self) -> set[str]:
        """Every digest this plan may delete (published to writers before the sweep)."""
        return set(self.blobs) | set(self.links) | {d for _, d in self.manifests}


def make_plan(
    repos: Mapping[str, RepoScan],
    blobs: Mapping[str, BlobInfo],
    marked: MarkResult,
    cutoff: dt.datetime,
) -> Plan:
    """Candidates: unmarked and old, with no link younger than the cutoff."""
    linked_by: dict[str, set[str]] = {}
    young_links: set[str] = set()
    for repo in repos.values():
        for digest, modified in repo.layers.items():
            linked_by.setdefault(digest, set()).add(repo.name)
            if modified >= cutoff:
                young_links.add(digest)
    plan = Plan()
    for digest in blobs:
        plan.dir_sizes[blob_dir(digest)] = plan.dir_sizes.get(blob_dir(digest), 0) + 1
    for digest, info in blobs.items():
        if digest in marked.marked or digest in young_links or info.modified >= cutoff:
            continue
        plan.blobs[digest] = info
        plan.links[digest] = linked_by.get(digest, set())
    for digest, names in linked_by.items():  # links whose blob is gone: Distribution leaves them
        if digest not in blobs and digest not in young_links:
            plan.links[digest] = names
    for repo in repos.values():
        kept = marked.kept.get(repo.name, set(repo.revisions))
        plan.manifests.update((repo.name, d) for d in repo.revisions if d not in kept)
    return plan


def blob_dir(digest: str) -> str:
    """The ``blobs/<alg>/<xx>`` directory a blob lives under (the unit of a delete batch)."""
    return p.path_for(p.BlobPath(digest)).rsplit("/", 1)[0]
