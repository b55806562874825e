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
import json
import tempfile
from pathlib import Path
from typing import Any

from _harness import Kind, buffered, measure, run_rounds, summary, write_through

ROOT = "bench"


def child(kind: str, params: dict[str, Any], size: int, concurrency: int) -> None:
    from azure.storage.blob import BlobType

    from layerstore_core import load_driver

    driver = load_driver("azure", **params)
    blob = driver.bucket.container.get_blob_client(f"{ROOT}/{kind}")  # type: ignore[attr-defined]
    driver.put_content("/warmup", b"x")  # connections and imports out of the timing
    if kind == "writer":
        measure(lambda: write_through(driver.writer(f"/{kind}"), size))
    else:
        measure(lambda: blob.upload_blob(
            buffered(size), length=size, blob_type=BlobType.BLOCKBLOB,
            max_concurrency=concurrency, overwrite=True))
    stored = blob.get_blob_properties().size
    assert stored == size, (stored, size)
    blob.delete_blob()


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
    from tests.backends.azure import CONTAINER, Azurite

    kinds = [Kind(f"{kind}-c{n}", kind, int(n), f"baseline-c{n}")
             for n in args.maxconcurrency.split(",") for kind in ("writer", "baseline")]
    with tempfile.TemporaryDirectory(prefix="azurite-bench-") as tmp:
        server = Azurite(Path(tmp))
        try:
            server.create_container()

            def child_args(k: Kind) -> list[str]:
                params = server.params(rootdirectory=ROOT, chunksize=chunk,
                                       maxconcurrency=k.concurrency)
                return ["--mib", str(args.mib), "--maxconcurrency", str(k.concurrency),
                        "--child", k.kind, json.dumps(params)]

            results = run_rounds(kinds, args.runs, child_args, args.mib)
        finally:
            server.stop()
    summary(f"Azurite (container {CONTAINER}), {args.mib} MiB, block size {args.chunk_mib} MiB",
            kinds, results)


if __name__ == "__main__":
    main()
