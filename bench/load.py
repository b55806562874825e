"""A bounded load test: layerstore serve vs Distribution 2.8.2 on the filesystem backend, one run.

Usage: python bench/load.py [--clients 64] [--seconds 30] [--rounds 6] [--large-mib 8] [--json]

Needs Debian's Distribution (``apt-get install docker-registry``). Each server starts on an empty
store and both stay up; rounds alternate between them (a loaded machine drifts), each seeding one
image (config, layer, manifest), then ``--clients`` concurrent clients run a fixed mix for its
share of ``--seconds``: pushes of small blobs (4-64 KiB; POST, PUT), chunked pushes of
large blobs (POST, PATCH, PUT), manifest GETs and blob HEADs. Prints throughput, p50/p99
latency, errors and the server's peak RSS (VmHWM) side by side, with layerstore / Distribution
ratios (target: 0 errors, p99 ratio <= 1.0).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.backends._servers import free_port  # noqa: E402 - the repository root goes first
from tests.images import RegistryProcess, write_config  # noqa: E402

DISTRIBUTION = "/usr/bin/docker-registry"
KiB, MiB = 2**10, 2**20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
#: The mix: operation -> weight.
MIX = {"push_small": 30, "push_large": 4, "get_manifest": 36, "head_blob": 30}
#: Distinct large blobs pushed in turn.
LARGE_POOL = 8


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    """Content and its digest, computed once."""

    data: bytes
    digest: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", sha(self.data))


def with_digest(location: str, blob: Blob) -> str:
    """The upload URL plus ``digest=`` (httpx's ``params`` would replace its ``_state``)."""
    return f"{location}{'&' if '?' in location else '?'}digest={blob.digest}"


@dataclass
class Results:
    """Latencies (seconds) per operation, errors, bytes pushed."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in MIX})
    errors: dict[str, int] = field(default_factory=dict)
    pushed: int = 0
    elapsed: float = 0.0
    peak_rss_mib: float = 0.0

    def all(self) -> list[float]:
        return sorted(x for values in self.latencies.values() for x in values)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Workload:
    """The seeded image and the operations the clients draw from."""

    def __init__(self, client: httpx.AsyncClient, large: int) -> None:
        self.client = client
        # Made and hashed before the clock starts, so the load generator spends its time on
        # requests (a pushed-again blob is still uploaded whole; commit then finds it present).
        self.small = [Blob(os.urandom(random.randint(4 * KiB, 64 * KiB))) for _ in range(512)]
        self.large = [Blob(os.urandom(large)) for _ in range(LARGE_POOL)]
        self.layer = b""
        self.manifest_digest = ""

    async def seed(self) -> None:
        config, self.layer = b'{"architecture":"amd64","os":"linux"}', os.urandom(256 * KiB)
        for blob in (config, self.layer):
            await self._push("/v2/bench/seed", Blob(blob))
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": sha(self.layer), "size": len(self.layer)}],
        }).encode()
        r = await self.client.put("/v2/bench/seed/manifests/latest", content=manifest,
                                  headers={"Content-Type": OCI_MANIFEST})
        if r.status_code != 201:
            raise RuntimeError(f"seeding the manifest: {r.status_code} {r.text}")
        self.manifest_digest = r.headers["Docker-Content-Digest"]

    async def _push(self, repo: str, blob: Blob) -> None:
        """POST then PUT ?digest= with the body: Distribution 2.8 has no single-POST upload."""
        r = await self.client.post(f"{repo}/blobs/uploads/")
        _expect(r, 202)
        r = await self.client.put(with_digest(r.headers["Location"], blob), content=blob.data)
        _expect(r, 201)

    async def push_small(self) -> int:
        blob = random.choice(self.small)
        await self._push("/v2/bench/small", blob)
        return len(blob.data)

    async def push_large(self) -> int:
        blob = random.choice(self.large)
        r = await self.client.post("/v2/bench/large/blobs/uploads/")
        _expect(r, 202)
        data, half = blob.data, len(blob.data) // 2
        r = await self.client.patch(r.headers["Location"], content=data[:half],
                                    headers={"Content-Range": f"0-{half - 1}"})
        _expect(r, 202)
        r = await self.client.put(with_digest(r.headers["Location"], blob), content=data[half:],
                                  headers={"Content-Range": f"{half}-{len(data) - 1}"})
        _expect(r, 201)
        return len(data)

    async def get_manifest(self) -> int:
        r = await self.client.get("/v2/bench/seed/manifests/latest",
                                  headers={"Accept": OCI_MANIFEST})
        _expect(r, 200)
        return 0

    async def head_blob(self) -> int:
        r = await self.client.head(f"/v2/bench/seed/blobs/{sha(self.layer)}")
        _expect(r, 200)
        return 0


class UnexpectedStatus(Exception):
    """The server answered something the operation does not expect."""


def _expect(r: httpx.Response, status: int) -> None:
    if r.status_code != status:
        raise UnexpectedStatus(f"{r.request.method} {r.status_code} {r.text[:200]}")


async def load(url: str, clients: int, seconds: float, large: int) -> Results:
    results = Results()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        work = Workload(client, large)
        await work.seed()
        ops: dict[str, Callable[[], Awaitable[int]]] = {k: getattr(work, k) for k in MIX}
        names, weights = list(MIX), list(MIX.values())
        stop = time.monotonic() + seconds
        rng = random.Random(1)

        async def worker() -> None:
            while time.monotonic() < stop:
                op = rng.choices(names, weights)[0]
                start = time.monotonic()
                try:
                    pushed = await ops[op]()  # not `+= await`: that loses concurrent updates
                except (httpx.HTTPError, UnexpectedStatus) as exc:
                    key = f"{op}: {exc}"[:80]
                    results.errors[key] = results.errors.get(key, 0) + 1
                    continue
                results.latencies[op].append(time.monotonic() - start)
                results.pushed += pushed

        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(clients)))
        results.elapsed = time.monotonic() - began
    return results


def start_server(kind: str, work: Path) -> RegistryProcess:
    port = free_port()
    root = work / kind / "data"
    root.mkdir(parents=True)
    config = write_config(work / kind / "config.yml", "filesystem", {"rootdirectory": str(root)},
                          port)
    log = work / kind / "server.log"
    if kind == "layerstore":
        return RegistryProcess.layerstore(config, port, log).wait_ready()
    return RegistryProcess([DISTRIBUTION, "serve", str(config)], port, log).wait_ready()


def merge(into: Results, part: Results) -> None:
    for op, values in part.latencies.items():
        into.latencies[op].extend(values)
    for key, count in part.errors.items():
        into.errors[key] = into.errors.get(key, 0) + count
    into.pushed += part.pushed
    into.elapsed += part.elapsed


def run_both(work: Path, args: argparse.Namespace) -> dict[str, Results]:
    """Both servers up at once, rounds alternating between them (a loaded machine drifts)."""
    servers = {kind: start_server(kind, work) for kind in ("layerstore", "distribution")}
    totals = {kind: Results() for kind in servers}
    try:
        for n in range(args.rounds):
            order = list(servers) if n % 2 == 0 else list(reversed(servers))
            for kind in order:
                print(f"round {n + 1}/{args.rounds}: {kind}, {args.clients} clients for "
                      f"{args.seconds / args.rounds:g} s", file=sys.stderr)
                part = asyncio.run(load(servers[kind].url, args.clients,
                                        args.seconds / args.rounds, args.large_mib * MiB))
                merge(totals[kind], part)
        for kind, server in servers.items():
            totals[kind].peak_rss_mib = server.peak_rss_kib() / 1024
    finally:
        for server in servers.values():
            server.stop()
    return totals


def row(label: str, ours: float, theirs: float, fmt: str = "{:.1f}") -> str:
    ratio = ours / theirs if theirs else float("nan")
    return f"{label:<26}{fmt.format(ours):>14}{fmt.format(theirs):>16}{ratio:>10.2f}"


def report(ours: Results, theirs: Results) -> dict[str, dict[str, float]]:
    def figures(r: Results) -> dict[str, float]:
        every = r.all()
        out = {"ops_per_s": len(every) / r.elapsed, "mb_per_s": r.pushed / MiB / r.elapsed,
               "p50_ms": percentile(every, 0.5) * 1e3, "p99_ms": percentile(every, 0.99) * 1e3,
               "errors": float(sum(r.errors.values())), "peak_rss_mib": r.peak_rss_mib}
        for op, values in r.latencies.items():
            out[f"{op}_p99_ms"] = percentile(values, 0.99) * 1e3
            out[f"{op}_count"] = float(len(values))
        return out

    a, b = figures(ours), figures(theirs)
    print(f"{'':<26}{'layerstore':>14}{'Distribution':>16}{'ratio':>10}")
    print(row("requests/s (ops)", a["ops_per_s"], b["ops_per_s"]))
    print(row("pushed MiB/s", a["mb_per_s"], b["mb_per_s"]))
    print(row("p50 latency ms", a["p50_ms"], b["p50_ms"]))
    print(row("p99 latency ms", a["p99_ms"], b["p99_ms"]))
    for op in MIX:
        print(row(f"  {op} p99 ms", a[f"{op}_p99_ms"], b[f"{op}_p99_ms"]))
        print(row(f"  {op} count", a[f"{op}_count"], b[f"{op}_count"], "{:.0f}"))
    print(row("errors", a["errors"], b["errors"], "{:.0f}"))
    print(row("server peak RSS MiB", a["peak_rss_mib"], b["peak_rss_mib"]))
    for name, r in (("layerstore", ours), ("Distribution", theirs)):
        for key, count in sorted(r.errors.items()):
            print(f"  {name} error x{count}: {key}")
    return {"layerstore": a, "distribution": b}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=30.0, help="per server, all rounds")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds per server")
    parser.add_argument("--large-mib", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    if not os.access(DISTRIBUTION, os.X_OK):
        print(f"{DISTRIBUTION} missing: apt-get install docker-registry", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="layerstore-load-"))
    try:
        totals = run_both(work, args)
        ours, theirs = totals["layerstore"], totals["distribution"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = report(ours, theirs)
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
