"""inmemory writer appends: CPU time grows linearly with the bytes written.

Distribution's inmemory driver re-copies the file on every write (a 233 MiB push took 180 s of
CPU there). This writes SIZE and 4×SIZE bytes in 32 KiB writes with a close/append-resume every
8 MiB and prints CPU seconds for each; linear growth gives a ratio near 4 (quadratic near 16).
Baseline in the same run: a plain ``bytearray +=`` of the same writes.

    python bench/inmemory_append.py [--size-mib 64]
"""

from __future__ import annotations

import argparse
import os
import time

from layerstore_core.drivers.inmemory import InMemoryDriver

MIB = 2**20
WRITE = 32 * 1024
RESUME_EVERY = 8 * MIB


def through_driver(total: int, block: bytes) -> float:
    driver = InMemoryDriver()
    start = time.process_time()
    writer = driver.writer("/bench/data")
    written = 0
    while written < total:
        writer.write(block)
        written += len(block)
        if written % RESUME_EVERY == 0:
            writer.close()
            writer = driver.writer("/bench/data", append=True)
    writer.commit()
    elapsed = time.process_time() - start
    assert driver.stat("/bench/data").size == total
    return elapsed


def baseline(total: int, block: bytes) -> float:
    start = time.process_time()
    buf = bytearray()
    while len(buf) < total:
        buf += block
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=64)
    args = parser.parse_args()
    block = os.urandom(WRITE)
    small, large = args.size_mib * MIB, 4 * args.size_mib * MIB
    d_small, d_large = through_driver(small, block), through_driver(large, block)
    b_small, b_large = baseline(small, block), baseline(large, block)
    growth = d_large / d_small
    print(f"inmemory writer: {args.size_mib} MiB {d_small:.3f}s CPU, "
          f"{4 * args.size_mib} MiB {d_large:.3f}s CPU, growth x{growth:.2f} (linear: 4)")
    print(f"bytearray baseline: {b_small:.3f}s, {b_large:.3f}s; "
          f"driver/baseline at {4 * args.size_mib} MiB: {d_large / b_large:.2f}")


if __name__ == "__main__":
    main()
