"""Test images and registry processes for the skopeo tests and the push/pull benchmark.

``build_oci_layout`` writes an OCI image layout (``oci-layout``, ``index.json``, ``blobs/``) with
gzip layers of the requested sizes, streamed to disk (the big layer never sits in memory). Layer
content is seeded pseudo-random data stored uncompressed inside gzip (level 0), so a layer's blob
size is what was asked for, building is fast, and skopeo sees compressed layers and pushes them
as they are. ``RegistryProcess`` runs ``layerstore serve`` (or Distribution) as a subprocess.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
MiB = 2**20
_CHUNK = MiB


@dataclasses.dataclass(frozen=True)
class ImageLayout:
    """An OCI layout on disk and the digests skopeo must reproduce."""

    path: Path
    tag: str
    manifest_digest: str
    blob_digests: tuple[str, ...]  # config first, then layers

    @property
    def total_size(self) -> int:
        return sum((self.path / "blobs" / "sha256" / d.split(":")[1]).stat().st_size
                   for d in self.blob_digests)


class _HashingFile:
    """A write-only file that hashes and counts what passes through."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out, self.sha, self.size = out, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.out.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.out.flush()


class _RandomReader:
    """``size`` seeded pseudo-random bytes, read in chunks."""

    def __init__(self, size: int, seed: int) -> None:
        self.left, self.rng = size, random.Random(seed)

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return self.rng.randbytes(n)


def _put_blob(blobs: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def _write_layer(blobs: Path, size: int, seed: int) -> tuple[str, int, str]:
    """A gzip'd tar holding one file of about ``size`` bytes; (digest, size, diff_id)."""
    tmp = blobs / f".tmp-{seed}"
    content = max(size - 2048, 0)  # tar header + end blocks
    with open(tmp, "wb") as raw:
        hashed = _HashingFile(raw)
        with gzip.GzipFile(fileobj=hashed, mode="wb", compresslevel=0, mtime=0) as gz:  # type: ignore[arg-type]
            diff = _HashingFile(gz)  # type: ignore[arg-type]
            with tarfile.open(fileobj=diff, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                info = tarfile.TarInfo(f"layer-{seed}.bin")
                info.size, info.mtime, info.mode = content, 0, 0o644
                tar.addfile(info, _RandomReader(content, seed))  # type: ignore[arg-type]
    digest = hashed.sha.hexdigest()
    tmp.rename(blobs / digest)
    return f"sha256:{digest}", hashed.size, f"sha256:{diff.sha.hexdigest()}"


def build_oci_layout(dest: Path, layer_sizes: Sequence[int], tag: str = "latest",
                     seed: int = 0) -> ImageLayout:
    """Write an OCI image layout with one gzip layer per size (bytes, approximately)."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    layers = [_write_layer(blobs, size, seed * 1000 + i) for i, size in enumerate(layer_sizes)]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff for _, _, diff in layers]},
    }, sort_keys=True).encode()
    config_digest, config_size = _put_blob(blobs, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": LAYER_GZIP, "digest": d, "size": s} for d, s, _ in layers],
    }, sort_keys=True).encode()
    manifest_digest, manifest_size = _put_blob(blobs, manifest)
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest_size,
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    (dest / "index.json").write_text(json.dumps(index))
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return ImageLayout(dest, tag, manifest_digest,
                       (config_digest, *(d for d, _, _ in layers)))


@dataclasses.dataclass(frozen=True)
class IndexLayout:
    """An OCI layout whose tag names an image index of several platforms."""

    path: Path
    tag: str
    index_digest: str
    #: Per platform: (manifest digest, blob digests: config first, then layers).
    children: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def all_digests(self) -> set[str]:
        return {self.index_digest} | {d for m, blobs in self.children for d in (m, *blobs)}


def _write_image(blobs: Path, layer_sizes: Sequence[int], seed: int,
                 arch: str = "amd64") -> tuple[str, int, tuple[str, ...]]:
    """Layers, config and manifest into ``blobs``; (manifest digest, its size, blob digests)."""
    layers = [_write_layer(blobs, size, seed * 1000 + i) for i, size in enumerate(layer_sizes)]
    config = json.dumps({
        "architecture": arch, "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff for _, _, diff in layers]},
    }, sort_keys=True).encode()
    config_digest, config_size = _put_blob(blobs, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": LAYER_GZIP, "digest": d, "size": s} for d, s, _ in layers],
    }, sort_keys=True).encode()
    digest, size = _put_blob(blobs, manifest)
    return digest, size, (config_digest, *(d for d, _, _ in layers))


def build_oci_index(dest: Path, platforms: Sequence[tuple[str, Sequence[int]]], tag: str,
                    seed: int = 0) -> IndexLayout:
    """An OCI layout whose ``tag`` is an image index with one image per (arch, layer sizes)."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    children = []
    entries = []
    for i, (arch, sizes) in enumerate(platforms):
        digest, size, blob_digests = _write_image(blobs, sizes, seed * 100 + i, arch)
        children.append((digest, blob_digests))
        entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": size,
                        "platform": {"architecture": arch, "os": "linux"}})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries},
                       sort_keys=True).encode()
    index_digest, index_size = _put_blob(blobs, index)
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_INDEX, "digest": index_digest, "size": index_size,
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return IndexLayout(dest, tag, index_digest, tuple(children))


def read_oci_layout(path: Path, tag: str) -> tuple[str, tuple[str, ...]]:
    """(manifest digest, blob digests) of ``tag`` in a layout, verifying each blob's hash."""
    index = json.loads((path / "index.json").read_text())
    entry = next(m for m in index["manifests"]
                 if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
    blobs = path / "blobs" / "sha256"
    manifest = json.loads((blobs / entry["digest"].split(":")[1]).read_bytes())
    digests = (manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"]))
    for digest in (entry["digest"], *digests):
        sha = hashlib.sha256()
        with open(blobs / digest.split(":")[1], "rb") as f:
            while chunk := f.read(_CHUNK):
                sha.update(chunk)
        assert f"sha256:{sha.hexdigest()}" == digest, f"blob {digest} is corrupt"
    return entry["digest"], digests


# -- registry processes ---------------------------------------------------------------------

POLICY = {"default": [{"type": "insecureAcceptAnything"}]}


def write_config(path: Path, driver: str, params: Mapping[str, Any], port: int,
                 extra: Mapping[str, Any] | None = None) -> Path:
    """A Distribution-style config.yml for ``driver`` on 127.0.0.1:``port``."""
    doc: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {driver: dict(params), "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "shared-test-secret"},
    }
    for key, value in (extra or {}).items():
        doc.setdefault(key, {}).update(value)
    path.write_text(yaml.safe_dump(doc))
    return path


class RegistryProcess:
    """A registry server subprocess (``layerstore serve`` or ``docker-registry serve``)."""

    def __init__(self, argv: Sequence[str], port: int, log: Path,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._log_file = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(list(argv), stdout=self._log_file, stderr=subprocess.STDOUT,
                                     env=dict(env) if env is not None else None,
                                     cwd=cwd, start_new_session=True)

    @classmethod
    def layerstore(cls, config: Path, port: int, log: Path,
                   env: Mapping[str, str] | None = None) -> RegistryProcess:
        exe = shutil.which("layerstore")
        argv = [exe] if exe else ["python3", "-m", "layerstore_core.cli"]
        return cls([*argv, "serve", "--config", str(config)], port, log, env)

    def wait_ready(self, timeout: float = 30.0) -> RegistryProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"registry exited with {self.proc.returncode}: "
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(self.url + "/v2/", timeout=1).status_code in (200, 401):
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"registry did not answer within {timeout}s: "
                           f"{self.log.read_text(errors='replace')[-2000:]}")

    def peak_rss_kib(self) -> int:
        """VmHWM of the server process (Linux), in KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log_file.close()

    def __enter__(self) -> RegistryProcess:
        return self.wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def skopeo(*args: str, policy: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run skopeo with a permissive policy and TLS checks off (plain-HTTP local registry)."""
    argv = ["skopeo", "--policy", str(policy), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def write_policy(path: Path) -> Path:
    path.write_text(json.dumps(POLICY))
    return path
