"""skopeo pushes and pulls generated OCI images through ``layerstore serve`` on every backend.

The server runs as a subprocess from a Distribution-style config (``storage: {driver: params}``),
so only backends shared across processes take part. Digests of what comes back must equal what
was pushed; a second push to another repository goes through cross-repository mounts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from layerstore_core.testing import Backend
from tests.backends._servers import free_port
from tests.images import (
    ImageLayout,
    MiB,
    RegistryProcess,
    build_oci_layout,
    read_oci_layout,
    skopeo,
    write_config,
    write_policy,
)

LAYER_SIZES = (4096, 1 * MiB, 3 * MiB, 40 * MiB)


@pytest.fixture(scope="session")
def test_image(tmp_path_factory: pytest.TempPathFactory) -> ImageLayout:
    assert shutil.which("skopeo"), "skopeo is required (apt-get install skopeo)"
    return build_oci_layout(tmp_path_factory.mktemp("image") / "layout", LAYER_SIZES, tag="v1")


def test_skopeo_push_pull_roundtrip(
    shared_backend: Backend, test_image: ImageLayout, tmp_path: Path
) -> None:
    port = free_port()
    config = write_config(tmp_path / "config.yml", shared_backend.driver,
                          shared_backend.params, port)
    policy = write_policy(tmp_path / "policy.json")
    with RegistryProcess.layerstore(config, port, tmp_path / "server.log"):
        host = f"127.0.0.1:{port}"
        for repo in ("test/app", "other/app"):  # the second push mounts from the first
            push = skopeo("copy", "--dest-tls-verify=false", f"oci:{test_image.path}:v1",
                          f"docker://{host}/{repo}:v1", policy=policy)
            assert push.returncode == 0, push.stderr
        for repo in ("test/app", "other/app"):
            out = tmp_path / f"pulled-{repo.replace('/', '-')}"
            pull = skopeo("copy", "--src-tls-verify=false", f"docker://{host}/{repo}:v1",
                          f"oci:{out}:v1", policy=policy)
            assert pull.returncode == 0, pull.stderr
            manifest_digest, blobs = read_oci_layout(out, "v1")
            assert manifest_digest == test_image.manifest_digest
            assert blobs == test_image.blob_digests
        tags = httpx.get(f"http://{host}/v2/test/app/tags/list").json()
        assert tags == {"name": "test/app", "tags": ["v1"]}
        catalog = httpx.get(f"http://{host}/v2/_catalog").json()
        assert catalog == {"repositories": ["other/app", "test/app"]}
