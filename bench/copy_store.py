"""``layerstore copy --jobs 8`` filesystem → S3 (moto) against tree uploads of the same files.

Builds a filesystem registry store of about GIB GiB (BLOB_MIB blobs, plus SMALL 4 KiB blobs, each
linked in a repository), starts moto's S3 server (5 MiB minimum part size on), then copies the
store to a fresh prefix in child processes, alternating:
  layerstore : copy_store(filesystem, s3, jobs=8) — what `layerstore copy --jobs 8` runs
  boto3      : s3transfer's TransferManager uploading every file (max_concurrency 8, 8 MiB
               parts) — the engine of `aws s3 sync`, without its listing
  rclone     : `rclone copy --transfers 8` (when Debian's rclone is installed)
Prints each run's time, throughput and peak RSS (rclone's from RUSAGE_CHILDREN), then the best
of each and its ratio to boto3 (target <= 1.0). moto is reset before every run.

    python bench/copy_store.py [--gib 2] [--blob-mib 64] [--small 200] [--jobs 8] [--runs 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named as the issue asks, which shadows the standard library's ``copy`` for
# anything imported while bench/ is first on sys.path: move bench/ to the end first.
_BENCH = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p not in ("", _BENCH)] + [_BENCH]

import argparse  # noqa: E402 - after the sys.path fix above
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from typing import Any  # noqa: E402

from _harness import PIECE, REPO  # noqa: E402

BUCKET = "bench"
KEYS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
ROOT = "docker/registry/v2"


def _client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **KEYS,
                        config=Config(s3={"addressing_style": "path"},
                                      max_pool_connections=32))


def build_store(root: Path, gib: float, blob_mib: int, small: int) -> tuple[int, int]:
    """Write blobs (unique, random-looking) and their layer links; (files, bytes)."""
    block = os.urandom(PIECE)
    count = max(1, int(gib * 1024 / blob_mib))
    sizes = [blob_mib * PIECE] * count + [4096] * small
    files = total = 0
    for i, size in enumerate(sizes):
        header = f"blob {i}\n".encode()
        sha = hashlib.sha256()
        tmp = root / "tmp"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as out:
            left = size
            first = True
            while left:
                piece = (header + block)[:min(PIECE, left)] if first else block[:min(PIECE, left)]
                first = False
                out.write(piece)
                sha.update(piece)
                left -= len(piece)
        hex_ = sha.hexdigest()
        data = root / ROOT / "blobs" / "sha256" / hex_[:2] / hex_ / "data"
        data.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(data)
        link = root / ROOT / "repositories" / f"repo{i % 10}" / "_layers" / "sha256" / hex_ / "link"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.write_text(f"sha256:{hex_}")
        files += 2
        total += size + 71
    return files, total


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(kind: str, endpoint: str, root: str, jobs: int) -> None:
    prefix = f"copy-{kind}"
    start = time.perf_counter()
    if kind == "layerstore":
        from layerstore_core import load_driver
        from layerstore_core.ops.copy import CopyOptions, copy_store

        src = load_driver("filesystem", rootdirectory=root)
        dst = load_driver("s3", bucket=BUCKET, regionendpoint=endpoint, region="us-east-1",
                          accesskey="bench", secretkey="bench", forcepathstyle=True,
                          rootdirectory=prefix)
        report = copy_store(src, dst, CopyOptions(jobs=jobs))
        assert not report.failures, report.failures
        peak = _peak_kib()
    elif kind == "boto3":
        from boto3.s3.transfer import TransferConfig
        from s3transfer.manager import TransferManager

        config = TransferConfig(max_concurrency=jobs, multipart_chunksize=8 * PIECE)
        with TransferManager(_client(endpoint), config) as manager:
            for path in Path(root).rglob("*"):
                if path.is_file():
                    key = f"{prefix}/{path.relative_to(root)}"
                    manager.upload(str(path), BUCKET, key)
        peak = _peak_kib()
    else:
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}  # rclone fails on it
        env.update(RCLONE_CONFIG_MOTO_TYPE="s3", RCLONE_CONFIG_MOTO_PROVIDER="Other",
                   RCLONE_CONFIG_MOTO_ENDPOINT=endpoint, RCLONE_CONFIG_MOTO_ACCESS_KEY_ID="bench",
                   RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY="bench",
                   RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE="true",
                   RCLONE_CONFIG_MOTO_REGION="us-east-1")
        subprocess.run(["rclone", "copy", root, f"moto:{BUCKET}/{prefix}", "--transfers",
                        str(jobs), "--checkers", str(jobs), "--s3-upload-cutoff", "8M",
                        "--s3-chunk-size", "8M"], env=env, check=True)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_kib": peak}))


def _reset(endpoint: str) -> None:
    urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset", method="POST"),
                           timeout=60).close()
    _client(endpoint).create_bucket(Bucket=BUCKET)


def _stored(endpoint: str, prefix: str) -> tuple[int, int]:
    pages = _client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=BUCKET,
                                                                        Prefix=prefix + "/")
    objects = [o for page in pages for o in page.get("Contents", [])]
    return len(objects), sum(o["Size"] for o in objects)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--blob-mib", type=int, default=64)
    ap.add_argument("--small", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--child", nargs=3, metavar=("KIND", "ENDPOINT", "ROOT"))
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2], args.jobs)
        return
    sys.path.insert(0, str(REPO))
    from tests.backends.s3 import moto_server

    kinds = ["layerstore", "boto3"] + (["rclone"] if shutil.which("rclone") else [])
    with tempfile.TemporaryDirectory(prefix="bench-copy-") as tmp, moto_server() as endpoint:
        files, size = build_store(Path(tmp), args.gib, args.blob_mib, args.small)
        mib = size / PIECE
        print(f"store: {files} files, {mib:.0f} MiB; jobs {args.jobs}; "
              f"kinds {', '.join(kinds)}", flush=True)
        results: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
        for run in range(args.runs):
            shift = run % len(kinds)
            for kind in kinds[shift:] + kinds[:shift]:
                _reset(endpoint)
                argv = [sys.executable, sys.argv[0], "--jobs", str(args.jobs),
                        "--child", kind, endpoint, tmp]
                done = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
                if done.returncode:
                    raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
                r = json.loads(done.stdout.strip().splitlines()[-1])
                stored = _stored(endpoint, f"copy-{kind}")
                assert stored == (files, size), (kind, stored, files, size)
                results[kind].append(r)
                print(f"run {run + 1} {kind:10s} {r['seconds']:7.2f} s  "
                      f"{mib / r['seconds']:7.1f} MiB/s  peak RSS {r['peak_kib'] / 1024:6.1f} MiB",
                      flush=True)
    best = {k: min(r["seconds"] for r in v) for k, v in results.items()}
    print(f"fs -> moto S3, {mib:.0f} MiB in {files} files, jobs {args.jobs}")
    for kind in kinds:
        peak = max(r["peak_kib"] for r in results[kind]) / 1024
        print(f"{kind:10s} best {best[kind]:7.2f} s  {mib / best[kind]:7.1f} MiB/s  "
              f"ratio to boto3 {best[kind] / best['boto3']:.2f} (target <= 1.0)  "
              f"peak RSS {peak:6.1f} MiB")


if __name__ == "__main__":
    main()
