"""Small stores for the gc unit tests, written through the blob and manifest service."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from layerstore_core.registry import Registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def push_blob(registry: Registry, repo: str, data: bytes) -> dict[str, Any]:
    upload = registry.repository(repo).blobs.create_upload()
    upload.write(data)
    digest = upload.commit("sha256:" + hashlib.sha256(data).hexdigest()).digest
    return {"mediaType": "application/octet-stream", "digest": digest, "size": len(data)}


@dataclasses.dataclass(frozen=True)
class Pushed:
    """A manifest and the blobs it needs."""

    digest: str
    blobs: frozenset[str]

    @property
    def all(self) -> set[str]:
        return {self.digest, *self.blobs}


def push_image(registry: Registry, repo: str, seed: str, tag: str | None = None,
               subject: Pushed | None = None) -> Pushed:
    config = push_blob(registry, repo, json.dumps({"seed": seed}).encode())
    layer = push_blob(registry, repo, f"layer {seed}".encode())
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                           "layers": [layer]}
    if subject is not None:
        doc["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": 1}
    digest = registry.repository(repo).manifests.put(json.dumps(doc).encode(), None, tag=tag)
    return Pushed(digest, frozenset({config["digest"], layer["digest"]}))


def push_index(registry: Registry, repo: str, children: list[Pushed], tag: str) -> Pushed:
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": c.digest, "size": 1} for c in children]}
    digest = registry.repository(repo).manifests.put(json.dumps(doc).encode(), None, tag=tag)
    return Pushed(digest, frozenset())


def blobs_in(registry: Registry) -> set[str]:
    found = set()
    for info in registry.driver.walk("/"):
        parts = info.path.split("/")
        if not info.is_dir and parts[-1] == "data" and "blobs" in parts:
            found.add(f"{parts[-4]}:{parts[-2]}")
    return found


def age_tree(root: Path, seconds: float) -> None:
    """Make every file under ``root`` look ``seconds`` old (filesystem backends)."""
    when = time.time() - seconds
    for dirpath, _, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(dirpath, name), (when, when))
