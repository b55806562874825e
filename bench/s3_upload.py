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
import io
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

BUCKET = "bench"
PIECE = 2**20


class _Source(io.RawIOBase):
    """``size`` bytes of a repeated random MiB, streamed (never all in memory)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pos = 0
        self.block = os.urandom(PIECE)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        start = self.pos % PIECE
        n = max(0, min(len(buffer), self.size - self.pos, PIECE - start))
        buffer[:n] = self.block[start : start + n]
        self.pos += n
        return n


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


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
    source = _Source(size)
    driver.put_content("/warmup", b"x")  # connections and imports out of the timing
    client.head_object(Bucket=BUCKET, Key="bench/warmup")
    before = _rss_kib()
    start = time.perf_counter()
    if kind == "writer":
        writer = driver.writer(f"/{kind}")
        while piece := source.read(PIECE):
            writer.write(piece)
        writer.commit()
    else:
        # Buffered, so read(8 MiB) returns 8 MiB: a short read would make TransferManager take
        # the stream for a small one and send it as a single PutObject, not as parts.
        client.upload_fileobj(io.BufferedReader(source, PIECE), BUCKET, f"bench/{kind}")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stored = client.head_object(Bucket=BUCKET, Key=f"bench/{kind}")["ContentLength"]
    assert stored == size, (stored, size)
    print(json.dumps({"seconds": seconds, "rss_before_kib": before, "peak_kib": peak}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "S3_UPLOAD_PART_MIN_SIZE"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"moto did not start: {log.read_text()}") from None
            time.sleep(0.2)
    return proc, endpoint


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
    settings = [int(n) for n in args.maxconcurrency.split(",")]
    kinds = [(f"writer-c{n}", "writer", n) for n in settings] + [("baseline", "baseline", 1)]
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    proc, endpoint = _start(log)
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in kinds}
    try:
        for run in range(args.runs):
            shift = run % len(kinds)  # rotate the order: the first upload after a reset pays
            for label, kind, concurrency in kinds[shift:] + kinds[:shift]:  # for moto's GC
                _reset(endpoint)
                done = subprocess.run(
                    [sys.executable, __file__, "--mib", str(args.mib), "--chunk-mib",
                     str(args.chunk_mib), "--maxconcurrency", str(concurrency),
                     "--child", kind, endpoint],
                    capture_output=True, text=True, timeout=600,
                )
                if done.returncode:
                    raise SystemExit(f"{kind} failed:\n{done.stderr}")
                r = json.loads(done.stdout.strip().splitlines()[-1])
                results[label].append(r)
                print(f"run {run + 1} {label:10s} {r['seconds']:7.2f} s  "
                      f"{args.mib / r['seconds']:7.1f} MiB/s  peak RSS {r['peak_kib'] / 1024:6.1f}"
                      f" MiB (before upload {r['rss_before_kib'] / 1024:.1f} MiB)")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        log.unlink(missing_ok=True)
    best = {k: min(r["seconds"] for r in v) for k, v in results.items()}
    growth = {k: max(r["peak_kib"] - r["rss_before_kib"] for r in v) / 1024
              for k, v in results.items()}
    print(f"moto S3, {args.mib} MiB, writer chunksize {args.chunk_mib} MiB")
    for label, _, _ in kinds:
        ratio = best[label] / best["baseline"]
        print(f"{label:10s} best {best[label]:6.2f} s  ratio to baseline {ratio:.2f} "
              f"(target <= 1.0)  peak RSS growth {growth[label]:6.1f} MiB")


if __name__ == "__main__":
    main()
