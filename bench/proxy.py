"""Pull through the cache: cold and warm, vs a direct pull and vs Distribution's proxy mode.

Usage: python bench/proxy.py [--rounds 3] [--layers 1,32,200]

One upstream (Distribution 2.8.2, anonymous, filesystem) holds the image (layer sizes in
MiB). Each round pulls it with skopeo through a fresh ``layerstore serve`` cache (cold, warm,
warm again) and a fresh Distribution in proxy mode (``proxy.remoteurl``, the same three),
alternating which cache goes first, each cache's pulls between two direct pulls from the
upstream. This machine's speed drifts by a third within minutes, so each ratio is to the direct
pulls beside it; prints median times and the median ratios with their range (targets:
layerstore warm ≤ 1.0, cold ≤ 1.2; "warm again" shows what the page cache adds).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.images import MiB, RegistryProcess, build_oci_layout, write_policy  # noqa: E402
from tests.proxy_env import (  # noqa: E402 - the repository root goes on sys.path first
    pull,
    push,
    start_distribution,
    start_proxy,
)

REF = "bench/image:v1"
#: "warm again": a third pull, once the first warm pull has put the blobs in the page cache (the
#: proxy writes a fetch past it); the target is on the first warm pull.
PHASES = ("cold", "warm", "warm again")
KINDS = tuple(f"{name} {phase}" for name in ("layerstore", "distribution") for phase in PHASES)


def timed_pull(registry: RegistryProcess, dest: Path, policy: Path,
               creds: str | None = None) -> float:
    shutil.rmtree(dest, ignore_errors=True)
    start = time.perf_counter()
    done = pull(registry, REF, dest, policy, timeout=1800, creds=creds)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"pull from {registry.url} failed: {done.stderr}")
    shutil.rmtree(dest, ignore_errors=True)
    return elapsed


def cache_round(start: Callable[[Path], RegistryProcess], work: Path, policy: Path,
                direct: Callable[[], float]) -> tuple[list[float], float]:
    """The times of :data:`PHASES` and the direct pull's: the mean of one just before the cold
    pull and one just after the last warm pull, so the ratios pair pulls minutes apart at most."""
    root = work / "cache-root"
    shutil.rmtree(root, ignore_errors=True)
    proc = start(root)
    try:
        before = direct()
        pulls = [timed_pull(proc, work / "out", policy) for _ in PHASES]
        return pulls, (before + direct()) / 2
    finally:
        proc.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layers", default="1,32,200", help="layer sizes in MiB")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args()
    sizes = [int(float(x) * MiB) for x in args.layers.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    try:
        policy = write_policy(work / "policy.json")
        image = build_oci_layout(work / "image", sizes, seed=7)
        # Anonymous upstream: Distribution 2.8.2's proxy sends no basic credentials upstream (its
        # credential store is keyed by remoteurl, the basic handler looks up the request URL).
        upstream = start_distribution(work / "upstream", work, "upstream", auth=False)
        try:
            push(image, upstream, REF, policy, creds=None)
            remote = {"remoteurl": upstream.url}

            def layerstore(root: Path) -> RegistryProcess:
                return start_proxy(root, work, "layerstore", remote)

            def distribution(root: Path) -> RegistryProcess:
                return start_distribution(root, work, "distribution-proxy", auth=False,
                                          extra={"proxy": remote})

            def direct() -> float:
                return timed_pull(upstream, work / "out", policy)

            times: dict[str, list[float]] = {k: [] for k in ("direct", *KINDS)}
            ratios: dict[str, list[float]] = {k: [] for k in KINDS}
            for i in range(args.rounds):
                order = [("layerstore", layerstore), ("distribution", distribution)]
                for name, start in order if i % 2 == 0 else order[::-1]:
                    pulls, base = cache_round(start, work, policy, direct)
                    times["direct"].append(base)
                    for phase, value in zip(PHASES, pulls, strict=True):
                        times[f"{name} {phase}"].append(value)
                        ratios[f"{name} {phase}"].append(value / base)
        finally:
            upstream.stop()
        report(times, ratios, image.total_size / MiB, args)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def report(times: dict[str, list[float]], ratios: dict[str, list[float]], size_mib: float,
           args: argparse.Namespace) -> None:
    medians = {k: statistics.median(v) for k, v in times.items()}
    paired = {k: statistics.median(v) for k, v in ratios.items()}
    print(f"image {size_mib:.0f} MiB (layers {args.layers} MiB), {args.rounds} round(s), "
          "median seconds; ratio = median over rounds of time / the direct pulls beside it")
    for key, value in medians.items():
        spread = (f"ratio {paired[key]:5.2f}  ({min(ratios[key]):.2f}-{max(ratios[key]):.2f})"
                  if key in paired else "ratio  1.00")
        print(f"  {key:<23} {value:7.2f} s  {size_mib / value:7.1f} MiB/s  {spread}")
    for kind in PHASES:
        ratio = paired[f"layerstore {kind}"] / paired[f"distribution {kind}"]
        print(f"  layerstore / distribution ({kind}): {ratio:.2f}")
    print(f"  targets: layerstore warm <= 1.00 (got {paired['layerstore warm']:.2f}), "
          f"cold <= 1.20 (got {paired['layerstore cold']:.2f})")


if __name__ == "__main__":
    main()
