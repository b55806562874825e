"""Garbage collection: ``layerstore gc`` vs Distribution's ``docker-registry garbage-collect``.

Usage: python bench/gc.py [--repos 200] [--tags 20] [--layers 3] [--backends filesystem,s3]

A synthetic store (repos × tags images of a config and ``--layers`` layers; every other image's
manifest deleted, so about half the blobs are unreferenced) is written twice, identically, in
Distribution's layout; one copy is collected by ``layerstore gc --grace 0s`` and the other by
``docker-registry garbage-collect``, each as a subprocess, in default mode, first as a dry run
(marking only) and then for real. Prints wall time, backend requests (S3: HTTP requests counted
by operation by tests/s3proxy.py in front of moto; the filesystem has none to count) and the ratio
layerstore / Distribution (target on S3: at most 0.25), and checks that both left the same blobs.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402

from layerstore_core import load_driver  # noqa: E402
from layerstore_core.driver import StorageDriver  # noqa: E402
from tests.backends._servers import free_port  # noqa: E402
from tests.s3proxy import S3Proxy  # noqa: E402

#: Backend requests so far, by S3 operation (the filesystem has none).
Counts = Callable[[], dict[str, int]]

DISTRIBUTION = "/usr/bin/docker-registry"
ROOT = "/docker/registry/v2"
S3_KEYS = {"accesskey": "testing", "secretkey": "testing", "region": "us-east-1"}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


# -- the synthetic store ----------------------------------------------------------------------

def _blob(seed: str) -> tuple[str, bytes]:
    data = hashlib.sha512(seed.encode()).digest() * 4
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def _blob_path(digest: str) -> str:
    hex_ = digest.split(":")[1]
    return f"{ROOT}/blobs/sha256/{hex_[:2]}/{hex_}/data"


def image_writes(repo: str, tag: int, layers: int) -> Iterator[tuple[str, bytes]]:
    """(path, content) of one image; every other tag's manifest is deleted (no revision)."""
    repo_dir = f"{ROOT}/repositories/{repo}"
    parts = [_blob(f"{repo}/{tag}/{i}") for i in range(layers + 1)]
    for digest, data in parts:
        yield _blob_path(digest), data
        yield f"{repo_dir}/_layers/sha256/{digest.split(':')[1]}/link", digest.encode()
    descriptors = [{"mediaType": "application/octet-stream", "digest": d, "size": len(b)}
                   for d, b in parts]
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": descriptors[0], "layers": descriptors[1:]}).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    yield _blob_path(digest), manifest
    if tag % 2 == 0:
        hex_ = digest.split(":")[1]
        yield f"{repo_dir}/_manifests/revisions/sha256/{hex_}/link", digest.encode()
        yield f"{repo_dir}/_manifests/tags/t{tag}/current/link", digest.encode()
        yield f"{repo_dir}/_manifests/tags/t{tag}/index/sha256/{hex_}/link", digest.encode()


def build_store(driver: StorageDriver, repos: int, tags: int, layers: int) -> int:
    writes = [w for r in range(repos) for t in range(tags)
              for w in image_writes(f"bench/repo{r}", t, layers)]
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda w: driver.put_content(*w), writes))
    return len(writes)


def blobs_left(driver: StorageDriver) -> set[str]:
    return {i.path.split("/")[-2] for i in driver.walk(f"{ROOT}/blobs")
            if not i.is_dir and i.path.endswith("/data")}


@contextmanager
def s3_endpoint() -> Iterator[str]:
    from tests.backends.s3 import moto_server

    with moto_server() as url:
        yield url


def make_bucket(endpoint: str, name: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                 aws_secret_access_key="testing", region_name="us-east-1").create_bucket(
        Bucket=name)


# -- the two collectors -----------------------------------------------------------------------

def write_config(path: Path, driver: str, params: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({
        "version": 0.1, "log": {"level": "error"},
        "storage": {driver: params, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{free_port()}", "secret": "bench"},
    }))
    return path


def run_timed(argv: list[str]) -> float:
    env = dict(os.environ)
    env.pop("AWS_CA_BUNDLE", None)  # Distribution's s3 driver panics on it
    start = time.perf_counter()
    out = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                         timeout=3600, check=False)
    took = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(f"{argv[0]} failed: {out.stderr.decode(errors='replace')[-2000:]}")
    return took


def layerstore_argv(config: Path) -> list[str]:
    exe = shutil.which("layerstore")
    argv = [exe] if exe else [sys.executable, "-m", "layerstore_core.cli"]
    return [*argv, "gc", "--config", str(config), "--grace", "0s"]


def compare(backend: str, stores: dict[str, tuple[StorageDriver, Path, Counts]],
            written: int) -> None:
    """Mark only (each tool's dry run), then the real collection, on each copy."""
    results: dict[tuple[str, str], tuple[float, int]] = {}
    before = blobs_left(stores["layerstore"][0])
    for mode in ("dry run", "collect"):
        for name, (_, config, requests) in stores.items():
            argv = layerstore_argv(config) if name == "layerstore" else [
                DISTRIBUTION, "garbage-collect", str(config)]
            if mode == "dry run":
                argv.append("--dry-run")
            start_count = collections.Counter(requests())
            took = run_timed(argv)
            ops = collections.Counter(requests())
            ops.subtract(start_count)
            results[name, mode] = (took, sum(ops.values()))
            shown = ", ".join(f"{op} {n}" for op, n in ops.most_common() if n)
            print(f"  {backend} {mode:8} {name:12} {took:8.2f}s "
                  f"{results[name, mode][1]:>8} requests  {shown}", flush=True)
    left = {name: blobs_left(driver) for name, (driver, _, _) in stores.items()}
    same = left["layerstore"] == left["distribution"]
    print(f"\n== {backend}: {written} objects written per copy, {len(before)} blobs, "
          f"{len(before) - len(left['layerstore'])} deleted; same blobs deleted: {same} ==")
    print(f"{'':24}{'layerstore':>12}{'distribution':>14}{'ratio':>8}")
    for mode in ("dry run", "collect"):
        (t1, r1), (t2, r2) = results["layerstore", mode], results["distribution", mode]
        print(f"{mode + ' wall time (s)':24}{t1:>12.2f}{t2:>14.2f}{t1 / t2:>8.2f}")
        if r2:
            print(f"{mode + ' requests':24}{r1:>12}{r2:>14}{r1 / r2:>8.2f}")
    if not same:
        sys.exit("the two collectors left different blobs")


def bench_filesystem(work: Path, args: argparse.Namespace) -> None:
    stores: dict[str, tuple[StorageDriver, Path, Counts]] = {}
    root = work / "fs-built"
    written = build_store(load_driver("filesystem", rootdirectory=str(root)), args.repos,
                          args.tags, args.layers)
    for name in ("layerstore", "distribution"):
        copy = work / f"fs-{name}"
        shutil.copytree(root, copy)
        config = write_config(work / f"fs-{name}.yml", "filesystem", {"rootdirectory": str(copy)})
        stores[name] = (load_driver("filesystem", rootdirectory=str(copy)), config, dict)
    compare("filesystem", stores, written)


def bench_s3(work: Path, args: argparse.Namespace) -> None:
    with s3_endpoint() as endpoint, S3Proxy(endpoint) as proxy:
        stores: dict[str, tuple[StorageDriver, Path, Counts]] = {}
        written = 0
        for name in ("layerstore", "distribution"):
            bucket = f"bench-gc-{name}"
            make_bucket(endpoint, bucket)
            direct = {**S3_KEYS, "bucket": bucket, "regionendpoint": endpoint,
                      "secure": False, "forcepathstyle": True}
            driver = load_driver("s3", **direct)
            written = build_store(driver, args.repos, args.tags, args.layers)
            params: dict[str, Any] = {**S3_KEYS, "bucket": bucket, "secure": False,
                                      "regionendpoint": proxy.url}
            if name == "layerstore":
                params["forcepathstyle"] = True
            config = write_config(work / f"s3-{name}.yml", "s3", params)
            stores[name] = (driver, config, proxy.counts)
        compare("s3", stores, written)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repos", type=int, default=200)
    ap.add_argument("--tags", type=int, default=20)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--backends", default="filesystem,s3")
    args = ap.parse_args()
    if not Path(DISTRIBUTION).exists():
        sys.exit("docker-registry is required: apt-get install docker-registry")
    with tempfile.TemporaryDirectory(prefix="bench-gc-") as tmp:
        work = Path(tmp)
        print(f"store: {args.repos} repositories x {args.tags} tags x {args.layers} layers "
              "(every other manifest deleted)")
        for backend in args.backends.split(","):
            {"filesystem": bench_filesystem, "s3": bench_s3}[backend](work, args)


if __name__ == "__main__":
    main()
