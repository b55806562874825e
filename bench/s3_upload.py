"""Upload throughput of the s3 driver's writer against boto3's own ``upload_fileobj``.

Starts moto's S3 server (a subprocess, 5 MiB minimum part size on), then uploads the same SIZE
bytes (generated, never held whole) in child processes, alternating:
  writer-cN : driver.writer(path) with maxconcurrency=N, fed 1 MiB writes, then commit()
  baseline  : client.upload_fileobj(stream) — boto3's TransferManager (8 MiB parts, 10 threads)
Prints each run's time, the best of each, the ratio writer/baseline (target <= 1.0) and each
child's peak RSS growth over its RSS before uploading (the writer holds one part at
maxconcurrency=1, the default, and N + 1 parts at N > 1). moto's state is reset before every
upload (it keeps every object in memory). The machine is shared, so compare best-of-runs.

    python bench/s3_upload.py [--mib 256] [--chunk-mib 10] [--maxconcurrency 1,4] [--runs 3]
"""

from __future__ import annotations

import argparse
import urllib.request
from typing import Any

from _harness import Kind, buffered, measure, run_rounds, summary, write_through

BUCKET = "bench"


def _client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench",
                        config=Config(signature_version="s3v4",
                                      s3={"addressing_style": "path"}))


def child(kind: str, endpoint: str, size: int, chunk: int, concurrency: int) -> None:
    from layerstore_core import load_driver

    driver = load_driver("s3", bucket=BUCKET, regionendpoint=endpoint, region="us-east-1",
                         accesskey="bench", secretkey="bench", forcepathstyle=True,
                         rootdirectory="bench", chunksize=chunk, maxconcurrency=concurrency)
    client = _client(endpoint)
    driver.put_content("/warmup", b"x")  # connections and imports out of the timing
    client.head_object(Bucket=BUCKET, Key="bench/warmup")
    if kind == "writer":
        measure(lambda: write_through(driver.writer(f"/{kind}"), size))
    else:
        measure(lambda: client.upload_fileobj(buffered(size), BUCKET, f"bench/{kind}"))
    stored = client.head_object(Bucket=BUCKET, Key=f"bench/{kind}")["ContentLength"]
    assert stored == size, (stored, size)


def _reset(endpoint: str) -> None:
    """Drop moto's state (it holds every object in memory) and recreate the bucket."""
    urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset", method="POST"),
                           timeout=30).close()
    _client(endpoint).create_bucket(Bucket=BUCKET)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--chunk-mib", type=int, default=10)
    ap.add_argument("--maxconcurrency", default="1,4", help="comma-separated writer settings")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--child", nargs=2, metavar=("KIND", "ENDPOINT"))
    args = ap.parse_args()
    size, chunk = args.mib * 2**20, args.chunk_mib * 2**20
    if args.child:
        child(args.child[0], args.child[1], size, chunk, int(args.maxconcurrency))
        return
    from tests.backends.s3 import moto_server

    writers = [Kind(f"writer-c{n}", "writer", int(n), "baseline")
               for n in args.maxconcurrency.split(",")]
    kinds = [*writers, Kind("baseline", "baseline", 1, "baseline")]
    with moto_server() as endpoint:
        results = run_rounds(
            kinds, args.runs, lambda k: [
                "--mib", str(args.mib), "--chunk-mib", str(args.chunk_mib),
                "--maxconcurrency", str(k.concurrency), "--child", k.kind, endpoint],
            args.mib, before_each=lambda: _reset(endpoint),
        )  # fmt: skip
    summary(f"moto S3, {args.mib} MiB, writer chunksize {args.chunk_mib} MiB", kinds, results)


if __name__ == "__main__":
    main()
