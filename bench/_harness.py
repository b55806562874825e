"""What the upload benches share: a streamed source, a measured child process, the report.

Each bench script runs every upload in a fresh child process (``--child KIND ...``) so that peak
RSS is the upload's own; the child measures with :func:`measure` and prints one JSON line. The
parent alternates kinds over several runs (:func:`run_rounds`) and prints best times, the ratio
to the baseline (target <= 1.0), client CPU and peak RSS growth (:func:`summary`). The emulators
are started by the test suite's own code (``tests/backends``), stopped by PID.
"""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for tests.backends, which start the emulators

PIECE = 2**20
CHILD_TIMEOUT_S = 900


class Source(io.RawIOBase):
    """``size`` bytes of a repeated random MiB, streamed (never all in memory); seekable."""

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

    def readinto(self, buffer: Any) -> int:
        start = self.pos % PIECE
        n = max(0, min(len(buffer), self.size - self.pos, PIECE - start))
        buffer[:n] = self.block[start : start + n]
        self.pos += n
        return n


def buffered(size: int) -> io.BufferedReader:
    """A Source read through a buffer, so read(n) returns n bytes as a file does.

    SDK uploaders take a short read for the end of a small stream (one PutObject, not parts).
    """
    return io.BufferedReader(Source(size), PIECE)


def write_through(writer: Any, size: int) -> None:
    """Feed ``size`` bytes to a driver writer in 1 MiB writes, then commit."""
    source = Source(size)
    while piece := source.read(PIECE):
        writer.write(piece)
    writer.commit()


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


def measure(upload: Callable[[], None]) -> None:
    """Run one upload in this (child) process; print its figures as the last JSON line."""
    before = _rss_kib()
    cpu_start = _cpu()
    start = time.perf_counter()
    upload()
    seconds = time.perf_counter() - start
    cpu = _cpu() - cpu_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_before_kib": before, "peak_kib": peak}))


@dataclass(frozen=True)
class Kind:
    """One upload configuration: its label, the child's KIND, and the baseline it is held to."""

    label: str
    kind: str
    concurrency: int
    baseline: str


Results = dict[str, list[dict[str, float]]]


def run_rounds(
    kinds: Sequence[Kind],
    runs: int,
    child_args: Callable[[Kind], list[str]],
    mib: int,
    before_each: Callable[[], None] | None = None,
) -> Results:
    """Run every kind ``runs`` times, rotating the order; print each run as it finishes."""
    results: Results = {k.label: [] for k in kinds}
    for run in range(runs):
        shift = run % len(kinds)  # the first upload after a start or reset pays for warm-up
        for k in list(kinds[shift:]) + list(kinds[:shift]):
            if before_each is not None:
                before_each()
            argv = [sys.executable, sys.argv[0], *child_args(k)]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
            if done.returncode:
                raise SystemExit(f"{k.label} failed:\n{done.stderr}")
            r = json.loads(done.stdout.strip().splitlines()[-1])
            results[k.label].append(r)
            print(f"run {run + 1} {k.label:12s} {r['seconds']:7.2f} s  cpu {r['cpu']:5.2f} s  "
                  f"{mib / r['seconds']:7.1f} MiB/s  peak RSS {r['peak_kib'] / 1024:6.1f} MiB "
                  f"(before upload {r['rss_before_kib'] / 1024:.1f} MiB)", flush=True)  # fmt: skip
    return results


def summary(title: str, kinds: Sequence[Kind], results: Results) -> None:
    """Best-of-runs time, ratio to the baseline, client CPU and peak RSS growth per kind."""
    best = {k: min(r["seconds"] for r in v) for k, v in results.items()}
    cpu = {k: min(r["cpu"] for r in v) for k, v in results.items()}
    growth = {
        k: max(r["peak_kib"] - r["rss_before_kib"] for r in v) / 1024 for k, v in results.items()
    }
    print(title)
    for k in kinds:
        ratio = best[k.label] / best[k.baseline]
        print(f"{k.label:12s} best {best[k.label]:6.2f} s  ratio to {k.baseline} {ratio:.2f} "
              f"(target <= 1.0)  client cpu {cpu[k.label]:5.2f} s  "
              f"peak RSS growth {growth[k.label]:6.1f} MiB")  # fmt: skip
