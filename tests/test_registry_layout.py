"""A store written by the service has the shape of Distribution 2.8.2's (the reference file)."""

from __future__ import annotations

import hashlib
import json
import re

from layerstore_core import Registry
from layerstore_core.registry import paths as p
from layerstore_core.registry.manifests import OCI_MANIFEST
from layerstore_core.testing import Backend

#: Section 1 of shared/reference/distribution-2.8.2-layout.txt (files of test/img and blobs/),
#: verbatim but for the upload Distribution failed to delete on cancel (a Go bug, not copied).
REFERENCE_FILES = """\
644 561 docker/registry/v2/blobs/sha256/4a/4aa2cb8a2963e52d69c5b7d6b74932833237560933903d7cf75659f2a35775ea/data
644 1049269 docker/registry/v2/blobs/sha256/7b/7baa5ab46f21623b91a77e9c2e15877a3507a67a1587da033cdf3c4b52634bfc/data
644 10854 docker/registry/v2/blobs/sha256/cc/cce7a11364fc8d7725c48c3106e7df567e8ac7dc4c31e0f97b6237c35565083b/data
644 626 docker/registry/v2/blobs/sha256/fd/fddb410d64bf9fa4b63d6b42436d265de2c5d00115d9efe60b7d8b9ae73438f5/data
644 71 docker/registry/v2/repositories/test/img/_layers/sha256/7baa5ab46f21623b91a77e9c2e15877a3507a67a1587da033cdf3c4b52634bfc/link
644 71 docker/registry/v2/repositories/test/img/_layers/sha256/cce7a11364fc8d7725c48c3106e7df567e8ac7dc4c31e0f97b6237c35565083b/link
644 71 docker/registry/v2/repositories/test/img/_layers/sha256/fddb410d64bf9fa4b63d6b42436d265de2c5d00115d9efe60b7d8b9ae73438f5/link
644 71 docker/registry/v2/repositories/test/img/_manifests/revisions/sha256/4aa2cb8a2963e52d69c5b7d6b74932833237560933903d7cf75659f2a35775ea/link
644 71 docker/registry/v2/repositories/test/img/_manifests/tags/v1/current/link
644 71 docker/registry/v2/repositories/test/img/_manifests/tags/v1/index/sha256/4aa2cb8a2963e52d69c5b7d6b74932833237560933903d7cf75659f2a35775ea/link
644 1000 docker/registry/v2/repositories/test/img/_uploads/efcca654-e059-49c3-a639-644b2cec8d48/data
644 108 docker/registry/v2/repositories/test/img/_uploads/efcca654-e059-49c3-a639-644b2cec8d48/hashstates/sha256/0
644 108 docker/registry/v2/repositories/test/img/_uploads/efcca654-e059-49c3-a639-644b2cec8d48/hashstates/sha256/1000
644 20 docker/registry/v2/repositories/test/img/_uploads/efcca654-e059-49c3-a639-644b2cec8d48/startedat
"""  # noqa: E501 - verbatim reference lines
UPLOAD_DATA = "docker/registry/v2/repositories/test/img/_uploads/<id>/data"


def _shape(path: str) -> str:
    path = re.sub(r"/[0-9a-f]{64}(?=/|$)", "/<hex>", path)
    path = re.sub(r"/sha256/[0-9a-f]{2}/", "/sha256/<2>/", path)
    path = re.sub(r"/_uploads/[0-9a-f-]{36}/", "/_uploads/<id>/", path)
    return re.sub(r"/hashstates/sha256/\d+$", "/hashstates/sha256/<offset>", path)


def _size_class(shape: str, size: int) -> str:
    return str(size) if shape.rsplit("/", 1)[-1] in ("link", "startedat", "<offset>") else "*"


def reference_files() -> set[tuple[str, str]]:
    files = set()
    for line in REFERENCE_FILES.splitlines():
        match = re.fullmatch(r"644 (\d+) (\S+)", line.strip())
        if match:
            shape = _shape(match[2])
            files.add((shape, _size_class(shape, int(match[1]))))
    return files


def store_files(registry: Registry) -> set[tuple[str, str]]:
    files = set()
    for info in registry.driver.walk("/"):
        if not info.is_dir:
            shape = _shape(info.path.lstrip("/"))
            files.add((shape, _size_class(shape, info.size)))
    return files


def _push(registry: Registry, data: bytes) -> dict[str, object]:
    upload = registry.repository("test/img").blobs.create_upload()
    upload.write(data)
    digest = upload.commit("sha256:" + hashlib.sha256(data).hexdigest()).digest
    return {"mediaType": "application/octet-stream", "digest": digest, "size": len(data)}


def test_store_matches_reference_shape(any_backend: Backend) -> None:
    registry = Registry(any_backend.make())
    layers = [_push(registry, b"\x1f\x8b" + bytes(1000)), _push(registry, b"\x1f\x8b" + bytes(10))]
    config = _push(registry, b'{"architecture":"amd64","os":"linux"}')
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}
    content = json.dumps(doc).encode()
    digest = registry.repository("test/img").manifests.put(content, OCI_MANIFEST, tag="v1")
    interrupted = registry.repository("test/img").blobs.create_upload()
    interrupted.write(bytes(1000))
    interrupted.close()

    actual, expected = store_files(registry), reference_files()
    # Object stores may show no upload data before commit; everything else must match exactly.
    assert {f for f in actual if f[0] != UPLOAD_DATA} == {
        f for f in expected if f[0] != UPLOAD_DATA
    }
    assert {f[0] for f in actual} >= {f[0] for f in expected} - {UPLOAD_DATA}
    link = p.path_for(p.ManifestTagCurrentPath("test/img", "v1"))
    assert registry.driver.get_content(link) == digest.encode()
    startedat = p.path_for(p.UploadStartedAtPath("test/img", interrupted.id))
    assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", registry.driver.get_content(startedat))
    state = p.path_for(p.UploadHashStatePath("test/img", interrupted.id, "sha256", 1000))
    assert registry.driver.get_content(state)[:4] == b"sha\x03"
