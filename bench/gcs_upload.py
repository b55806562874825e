"""Upload throughput of the gcs driver's writer against the SDK's own resumable upload.

Starts one emulator (fake-gcs-server by default, or gcp-storage-emulator), then uploads the
same SIZE bytes (generated, never held whole) in child processes, alternating:
  writer   : driver.writer(path) fed 1 MiB writes, then commit()
  baseline : blob.upload_from_file(stream, chunk_size=CHUNK) — google-cloud-storage itself
Both use the same chunk size. Prints each run's time, the best of each, the ratio
writer/baseline (target <= 1.0) and each child's peak RSS over its RSS before uploading.

    python bench/gcs_upload.py [--emulator fake|emulator] [--mib 128] [--chunk-mib 16] [--runs 3]
"""

from __future__ import annotations

import argparse

from _harness import Kind, buffered, measure, run_rounds, summary, write_through

BUCKET = "layerstore-test"  # the bucket tests.backends.gcs creates


def child(kind: str, endpoint: str, size: int, chunk: int) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from layerstore_core import load_driver

    driver = load_driver("gcs", bucket=BUCKET, endpoint=endpoint, anonymous=True,
                         project="bench", chunksize=chunk, rootdirectory="bench")
    client = storage.Client(project="bench", credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": endpoint})
    driver.put_content("/warmup", b"x")  # connections and imports out of the timing
    if kind == "writer":
        measure(lambda: write_through(driver.writer(f"/{kind}"), size))
    else:
        blob = client.bucket(BUCKET).blob(f"bench/{kind}", chunk_size=chunk)
        measure(lambda: blob.upload_from_file(
            buffered(size), size=size, content_type="application/octet-stream", timeout=60))
    stored = client.bucket(BUCKET).get_blob(f"bench/{kind}").size
    assert stored == size, (stored, size)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--emulator", choices=["fake", "emulator"], default="fake")
    ap.add_argument("--mib", type=int, default=128)
    ap.add_argument("--chunk-mib", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--child", nargs=2, metavar=("KIND", "ENDPOINT"))
    args = ap.parse_args()
    size, chunk = args.mib * 2**20, args.chunk_mib * 2**20
    if args.child:
        child(args.child[0], args.child[1], size, chunk)
        return
    from tests.backends.gcs import gcs_server

    kinds = [Kind("writer", "writer", 1, "baseline"), Kind("baseline", "baseline", 1, "baseline")]
    with gcs_server(args.emulator) as endpoint:
        results = run_rounds(
            kinds, args.runs, lambda k: [
                "--mib", str(args.mib), "--chunk-mib", str(args.chunk_mib),
                "--child", k.kind, endpoint],
            args.mib,
        )  # fmt: skip
    summary(f"emulator {args.emulator}, {args.mib} MiB, chunk {args.chunk_mib} MiB",
            kinds, results)


if __name__ == "__main__":
    main()
