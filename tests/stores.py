"""Small registries built through the blob service, and byte-for-byte comparison of two stores.

``populate`` pushes images (config + layers + manifest + tag), an index over them, an upload
left in progress and a file the layout does not name (where a referrers index would live), so a
copy has every kind of object to carry and one it must leave behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections.abc import Iterator
from typing import IO

from layerstore_core import FileInfo, FileWriter, StorageDriver
from layerstore_core.ops import layout
from layerstore_core.registry import Registry
from layerstore_core.registry.manifests import OCI_INDEX, OCI_MANIFEST

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"
#: Where a referrers index might live: under the repository, outside Distribution's directories.
OTHER_FILE = "/docker/registry/v2/repositories/{repo}/_referrers/index.json"


@dataclasses.dataclass
class Image:
    repository: str
    tag: str
    manifest: str
    blobs: list[str]


def push_blob(registry: Registry, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    upload = registry.repository(repo).blobs.create_upload()
    upload.write(data)
    upload.commit(digest, len(data))
    return digest


def push_image(registry: Registry, repo: str, tag: str, layer_sizes: list[int],
               seed: int) -> Image:
    rng = random.Random(seed)
    layers = [(push_blob(registry, repo, data), len(data))
              for data in (rng.randbytes(size) for size in layer_sizes)]
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    config_digest = push_blob(registry, repo, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": LAYER, "digest": d, "size": s} for d, s in layers],
    }).encode()
    digest = registry.repository(repo).manifests.put(manifest, OCI_MANIFEST, tag=tag)
    return Image(repo, tag, digest, [config_digest, *(d for d, _ in layers)])


def populate(driver: StorageDriver, seed: int = 0, big: int = 3 * 2**20) -> list[Image]:
    """Two repositories, three images (one layer ``big`` bytes), an index, litter to skip."""
    registry = Registry(driver)
    images = [
        push_image(registry, "lib/app", "v1", [1000, big], seed),
        push_image(registry, "lib/app", "v2", [2000, 5000], seed + 1),
        push_image(registry, "other", "latest", [3000], seed + 2),
    ]
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": i.manifest, "size": 1} for i in images[:2]
    ]}).encode()
    registry.repository("lib/app").manifests.put(index, OCI_INDEX, tag="multi")
    registry.repository("lib/app").manifests.put(index, OCI_INDEX, tag="v1")  # retag: history
    upload = registry.repository("other").blobs.create_upload()
    upload.write(b"half an upload")
    upload.close()
    driver.put_content(OTHER_FILE.format(repo="lib/app"), b'{"manifests": []}')
    return images


def snapshot(driver: StorageDriver) -> dict[str, bytes]:
    """Every copied file (blobs and repository files, uploads left out) with its content."""
    return {entry.path: _read(driver, entry.path) for entry in layout.scan(driver)}


def _read(driver: StorageDriver, path: str) -> bytes:
    with driver.reader(path) as stream:
        return stream.read()


def assert_same_store(a: StorageDriver, b: StorageDriver) -> None:
    left, right = snapshot(a), snapshot(b)
    assert sorted(left) == sorted(right), set(left) ^ set(right)
    differing = [path for path in left if left[path] != right[path]]
    assert not differing, differing


class CountingDriver(StorageDriver):
    """A driver that passes every call to ``inner`` and records the paths written to."""

    name = "counting"
    Params = dict

    def __init__(self, inner: StorageDriver) -> None:
        self.inner = inner
        self.writes: list[str] = []

    def _get_content(self, path: str) -> bytes:
        return self.inner.get_content(path)

    def _put_content(self, path: str, data: bytes) -> None:
        self.writes.append(path)
        self.inner.put_content(path, data)

    def _reader(self, path: str, offset: int) -> IO[bytes]:
        return self.inner.reader(path, offset)

    def _writer(self, path: str, append: bool) -> FileWriter:
        self.writes.append(path)
        return self.inner.writer(path, append)

    def _stat(self, path: str) -> FileInfo:
        return self.inner.stat(path)

    def _list(self, path: str) -> list[str]:
        return self.inner.list(path)

    def _move(self, source: str, dest: str) -> None:
        self.writes.append(dest)
        self.inner.move(source, dest)

    def _delete(self, path: str) -> None:
        self.inner.delete(path)

    def _walk(self, path: str) -> Iterator[FileInfo]:
        return self.inner.walk(path)
