"""Server RSS under concurrent streaming PATCH uploads: this tree vs an older commit, same run.

Usage: python bench/upload_memory.py [--before REV] [--counts 1,4,16] [--size-mib 64] [--json]

Each server is ``layerstore serve`` as a new user runs it (filesystem driver, default config
otherwise), started afresh for each N. N clients each stream one ``--size-mib`` upload as a
chunked PATCH at once; VmRSS is sampled every 10 ms. Prints the RSS at start, the peak growth
per concurrent upload, and the RSS 3 s after the load, for the working tree and for ``--before``
(default ``HEAD~`` is not assumed: give the commit to compare with, or none for this tree only).
Target: peak growth per upload <= one request batch (4 MiB) + 1 MiB; RSS after close to start.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # so that `tests` imports

import httpx  # noqa: E402 - after sys.path is fixed

from tests.backends._servers import free_port  # noqa: E402 - the repository root goes first
from tests.images import MiB, RegistryProcess, write_config  # noqa: E402

PIECE = os.urandom(MiB)
SETTLE_S = 3.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    """Polls VmRSS of ``pid`` until stopped; ``peak`` is the highest seen."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self._done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.01)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def upload(url: str, name: str, size: int) -> None:
    def body() -> Any:
        for _ in range(size // MiB):
            yield PIECE

    with httpx.Client(base_url=url, timeout=600) as c:
        started = c.post(f"/v2/{name}/blobs/uploads/")
        started.raise_for_status()
        r = c.patch(started.headers["location"], content=body())
        r.raise_for_status()
        assert r.headers["range"] == f"0-{size - 1}", r.headers["range"]


def measure(src: Path, n: int, size: int, work: Path) -> dict[str, float]:
    port = free_port()
    root = work / f"root-{n}"
    config = write_config(work / f"config-{n}.yml", "filesystem", {"rootdirectory": str(root)},
                          port, {"log": {"level": "warn"}})
    env = {**os.environ, "PYTHONPATH": str(src)}
    argv = [sys.executable, "-m", "layerstore_core.cli", "serve", "--config", str(config)]
    proc = RegistryProcess(argv, port, work / f"server-{n}.log", env, cwd=src).wait_ready(60)
    try:
        upload(proc.url, "warm/up", 8 * MiB)  # imports, threads, first-request allocations done
        time.sleep(0.5)
        start = rss_kib(proc.proc.pid)
        sampler = Sampler(proc.proc.pid)
        sampler.start()
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            list(pool.map(lambda i: upload(proc.url, f"load/r{i}", size), range(n)))
        peak = sampler.stop()
        time.sleep(SETTLE_S)
        after = rss_kib(proc.proc.pid)
    finally:
        proc.stop()
    return {"start_mib": start / 1024, "peak_mib": peak / 1024,
            "per_upload_mib": (peak - start) / 1024 / n, "after_mib": after / 1024}


def source_tree(rev: str | None, work: Path) -> Path:
    """The working tree, or ``rev`` exported with ``git archive``."""
    if rev is None:
        return REPO
    dest = work / f"src-{rev.replace('/', '_')}"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--before", help="git revision to compare with (run in the same session)")
    ap.add_argument("--counts", default="1,4,16", help="concurrent uploads per round")
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    results: dict[str, dict[int, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-upload-memory-") as tmp:
        work = Path(tmp)
        trees = {"after (this tree)": source_tree(None, work)}
        if args.before:
            trees = {f"before ({args.before})": source_tree(args.before, work), **trees}
        for label, src in trees.items():
            results[label] = {}
            for n in counts:
                out = work / label[:5]
                out.mkdir(exist_ok=True)
                results[label][n] = measure(src, n, args.size_mib * MiB, out)
                if not args.json:
                    r = results[label][n]
                    print(f"{label:24} N={n:<3} start {r['start_mib']:6.1f} MiB  peak "
                          f"{r['peak_mib']:6.1f} MiB  +{r['per_upload_mib']:5.1f} MiB/upload  "
                          f"after {r['after_mib']:6.1f} MiB", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
