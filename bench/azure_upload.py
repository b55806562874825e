"""Upload throughput of the azure driver's writer against the SDK's own ``upload_blob``.

Starts Azurite (tests/azurite, `npm ci --prefix tests/azurite` first) on a temp ``--location``,
then uploads the same SIZE bytes (a repeated random MiB, never held whole) in child processes,
alternating, on the same server:
  writer-cN   : driver.writer(path) with maxconcurrency=N, fed 1 MiB writes, then commit()
  baseline-cN : BlobClient.upload_blob(stream, length=SIZE, max_concurrency=N), the SDK's own
                (parallel) block upload, same block size, same N
Prints each run's wall and client CPU time, the best of each, the ratio writer-cN/baseline-cN
(target <= 1.0) and each child's peak RSS growth over its RSS before uploading (the writer
holds one block at N = 1, N + 1 blocks above). Azurite (one node process) sets the pace; the
CPU figure is the client's own cost, which other load on a shared machine barely moves. Each
blob is deleted after its run so Azurite's disk stays small. Compare best-of-runs.

    python bench/azure_upload.py [--mib 256] [--chunk-mib 4] [--maxconcurrency 1,4] [--runs 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.backends.azure import CONTAINER, Azurite  # noqa: E402

PIECE = 2**20
ROOT = "bench"


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


def _cpu() -> float:
    """Client CPU seconds: unlike wall time, barely moved by other load on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(kind: str, params: dict[str, Any], size: int, concurrency: int) -> None:
    from azure.storage.blob import BlobType

    from layerstore_core import load_driver

    driver = load_driver("azure", **params)
    blob = driver._container.get_blob_client(f"{ROOT}/{kind}")  # type: ignore[attr-defined]
    source = _Source(size)
    driver.put_content("/warmup", b"x")  # connections and imports out of the timing
    before = _rss_kib()
    cpu_start = _cpu()
    start = time.perf_counter()
    if kind == "writer":
        writer = driver.writer(f"/{kind}")
        while piece := source.read(PIECE):
            writer.write(piece)
        writer.commit()
    else:
        blob.upload_blob(
            io.BufferedReader(source, PIECE), length=size, blob_type=BlobType.BLOCKBLOB,
            max_concurrency=concurrency, overwrite=True,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    cpu = _cpu() - cpu_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stored = blob.get_blob_properties().size
    assert stored == size, (stored, size)
    blob.delete_blob()
    print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_before_kib": before, "peak_kib": peak}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--chunk-mib", type=int, default=4)
    ap.add_argument("--maxconcurrency", default="1,4", help="comma-separated writer settings")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--child", nargs=2, metavar=("KIND", "PARAMS_JSON"))
    args = ap.parse_args()
    size, chunk = args.mib * 2**20, args.chunk_mib * 2**20
    if args.child:
        child(args.child[0], json.loads(args.child[1]), size, int(args.maxconcurrency))
        return
    settings = [int(n) for n in args.maxconcurrency.split(",")]
    kinds = [(f"{kind}-c{n}", kind, n) for n in settings for kind in ("writer", "baseline")]
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in kinds}
    with tempfile.TemporaryDirectory(prefix="azurite-bench-") as tmp:
        server = Azurite(Path(tmp))
        try:
            server.create_container()
            for run in range(args.runs):
                for label, kind, concurrency in kinds:
                    params = server.params(
                        rootdirectory=ROOT, chunksize=chunk, maxconcurrency=concurrency
                    )
                    done = subprocess.run(
                        [sys.executable, __file__, "--mib", str(args.mib), "--maxconcurrency",
                         str(concurrency), "--child", kind, json.dumps(params)],
                        capture_output=True, text=True, timeout=900,
                    )  # fmt: skip
                    if done.returncode:
                        raise SystemExit(f"{label} failed:\n{done.stderr}")
                    r = json.loads(done.stdout.strip().splitlines()[-1])
                    results[label].append(r)
                    print(f"run {run + 1} {label:12s} {r['seconds']:7.2f} s  cpu {r['cpu']:5.2f} s "
                          f"{args.mib / r['seconds']:7.1f} MiB/s  peak RSS "
                          f"{r['peak_kib'] / 1024:6.1f} MiB (before upload "
                          f"{r['rss_before_kib'] / 1024:.1f} MiB)", flush=True)  # fmt: skip
        finally:
            server.stop()
    best = {k: min(r["seconds"] for r in v) for k, v in results.items()}
    cpu = {k: min(r["cpu"] for r in v) for k, v in results.items()}
    growth = {
        k: max(r["peak_kib"] - r["rss_before_kib"] for r in v) / 1024 for k, v in results.items()
    }
    print(f"Azurite (container {CONTAINER}), {args.mib} MiB, block size {args.chunk_mib} MiB")
    for label, _, n in kinds:
        ratio = best[label] / best[f"baseline-c{n}"]
        print(f"{label:12s} best {best[label]:6.2f} s  ratio to baseline-c{n} {ratio:.2f} "
              f"(target <= 1.0)  client cpu {cpu[label]:5.2f} s  "
              f"peak RSS growth {growth[label]:6.1f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
