"""What a collection did (the report); how far it got goes to :mod:`layerstore_core.progress`."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..progress import NoProgress, Progress

__all__ = ["GCReport", "NoProgress", "Progress"]


@dataclasses.dataclass
class GCReport:
    """The outcome of one collection (in a dry run: what it would have deleted)."""

    dry_run: bool = False
    delete_untagged: bool = False
    grace_seconds: float = 0.0
    repositories: int = 0
    manifests_seen: int = 0
    blobs_seen: int = 0
    blobs_deleted: list[str] = dataclasses.field(default_factory=list)
    manifests_deleted: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    tags_deleted: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    links_deleted: int = 0
    uploads_purged: int = 0
    bytes_freed: int = 0
    #: Candidates spared because a push linked or referenced them during the run.
    rescued: int = 0
    #: Manifests whose data was missing or unreadable (marked by digest only).
    unreadable_manifests: int = 0
    duration_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["manifests_deleted"] = [{"repository": r, "digest": d}
                                    for r, d in self.manifests_deleted]
        doc["tags_deleted"] = [{"repository": r, "tag": t} for r, t in self.tags_deleted]
        return doc

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return (
            f"{self.repositories} repositories, {self.manifests_seen} manifests, "
            f"{self.blobs_seen} blobs seen; {verb} {len(self.blobs_deleted)} blobs "
            f"({self.bytes_freed} bytes), {len(self.manifests_deleted)} manifests, "
            f"{len(self.tags_deleted)} tags, {self.links_deleted} links; "
            f"{self.uploads_purged} stale uploads; {self.rescued} spared by pushes; "
            f"{self.duration_seconds:.1f}s"
        )
