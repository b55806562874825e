"""A fleet's pulls with and without the Redis cache, and metadata throughput of --workers 2.

Usage: python bench/fleet.py [--pulls 50] [--big-pulls 5] [--seconds 3] [--rounds 3]
                             [--concurrency 32] [--only pulls|metadata]

1. Three ``layerstore serve`` on one moto S3 bucket behind nginx (deploy/nginx-fleet.conf),
   redirects off so every byte goes through the fleet; once without a cache, once with
   ``storage.cache.blobdescriptor: redis``. A burst of concurrent pulls (GET manifest by tag,
   then every blob) of a small image, then of the 1 + 32 + 200 MiB image; the backend requests
   are counted from moto's request log. Target: the cache halves backend requests per pull.
2. A ``layerstore serve`` on the filesystem with 1 worker and one with ``--workers 2``: blob HEADs
   and manifest GETs per second from ``--concurrency`` keep-alive connections, both servers up
   at once and measured in ``--rounds`` alternating rounds of ``--seconds`` (medians),
   driven by ``hey`` (Debian package ``hey``; the benchmark needs it, the tests do not) held to
   one core (GOMAXPROCS 1), so the server gets the other; the server's CPU per request and the
   cores each side used are read from /proc. A Python client (the first version of this part)
   saturated before the server did. wrk cannot be used: it waits for a body after a HEAD.
   Target: two workers close to double one (on two idle cores; hey takes up to one of them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.backends._servers import free_port  # noqa: E402 - the repository root goes first
from tests.fleet import Fleet, RedisServer  # noqa: E402
from tests.images import (  # noqa: E402
    ImageLayout,
    RegistryProcess,
    build_oci_layout,
    skopeo,
    write_config,
    write_policy,
)

MiB = 2**20
BUCKET = "fleet-bench"
#: The load generator of the metadata part: native (Go), so the client is not what saturates.
HEY = shutil.which("hey") or "hey"


class Moto:
    """moto's S3 server with its request log in a file, so requests can be counted."""

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work / "moto.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                httpx.put(f"{self.url}/{BUCKET}", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("moto did not start")

    def requests(self) -> int:
        return sum(1 for line in self.log.read_text(errors="replace").splitlines()
                   if '" 2' in line or '" 3' in line or '" 4' in line)

    def params(self, prefix: str) -> dict[str, Any]:
        return {"bucket": BUCKET, "region": "us-east-1", "regionendpoint": self.url,
                "accesskey": "testing", "secretkey": "testing",
                "rootdirectory": f"/{prefix}", "forcepathstyle": True, "secure": False}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def _pull(client: httpx.AsyncClient, base: str, repo: str, tag: str) -> float:
    start = time.perf_counter()
    r = await client.get(f"{base}/v2/{repo}/manifests/{tag}", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json"})
    r.raise_for_status()
    doc = r.json()
    for digest in [doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]:
        async with client.stream("GET", f"{base}/v2/{repo}/blobs/{digest}") as blob:
            blob.raise_for_status()
            async for _ in blob.aiter_raw(MiB):
                pass
    return time.perf_counter() - start


async def burst(base: str, repo: str, tag: str, n: int) -> list[float]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        return list(await asyncio.gather(*(_pull(client, base, repo, tag) for _ in range(n))))


def push(layout: ImageLayout, host: str, ref: str, policy: Path) -> None:
    r = skopeo("copy", "--dest-tls-verify=false", f"oci:{layout.path}:{layout.tag}",
               f"docker://{host}/{ref}", policy=policy)
    assert r.returncode == 0, r.stderr


def fleet_pulls(work: Path, moto: Moto, cached: bool, images: dict[str, ImageLayout],
                pulls: dict[str, int], policy: Path) -> dict[str, dict[str, float]]:
    name = "redis" if cached else "nocache"
    rds = RedisServer(work).start() if cached else None
    run = work / name
    run.mkdir()
    params = moto.params(name)
    out: dict[str, dict[str, float]] = {}
    try:
        with Fleet(run, "s3", params, redis_addr=rds.addr if rds else None,
                   extra={"storage": {"redirect": {"disable": True}}}) as fleet:
            for kind, layout in images.items():
                push(layout, fleet.nginx.host, f"bench/{kind}:v1", policy)
            for kind in images:
                asyncio.run(burst(fleet.nginx.url, f"bench/{kind}", "v1", 1))  # warm
                before = moto.requests()
                t0 = time.perf_counter()
                times = asyncio.run(burst(fleet.nginx.url, f"bench/{kind}", "v1", pulls[kind]))
                wall = time.perf_counter() - t0
                out[kind] = {"backend_per_pull": (moto.requests() - before) / pulls[kind],
                             "p50": statistics.median(times), "max": max(times), "wall": wall}
    finally:
        if rds:
            rds.stop()
    return out


def _server_cpu(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and its children (the workers), from /proc."""
    total = 0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(c) for c in (task / "children").read_text().split()]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a child that just left
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _hey(url: str, method: str, seconds: float, concurrency: int, pid: int) -> dict[str, float]:
    """``hey`` on one core (GOMAXPROCS 1) against ``url``: req/s and each side's CPU."""
    argv = [HEY, "-cpus", "1", "-c", str(concurrency), "-z", f"{seconds}s", "-m", method,
            "-H", "Accept: application/vnd.oci.image.manifest.v1+json", url]
    cpu0, client0 = _server_cpu(pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    cpu1, client1 = _server_cpu(pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    statuses = re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)
    assert statuses and all(code == "200" for code, _ in statuses), out
    done = sum(int(n) for _, n in statuses)
    client = (client1.ru_utime + client1.ru_stime) - (client0.ru_utime + client0.ru_stime)
    return {"rps": float(re.findall(r"Requests/sec:\s+([\d.]+)", out)[0]),
            "server_us": 1e6 * (cpu1 - cpu0) / done, "server_cores": (cpu1 - cpu0) / seconds,
            "client_cores": client / seconds}


@contextlib.contextmanager
def metadata_server(work: Path, workers: int, layout: ImageLayout,
                    policy: Path) -> Iterator[tuple[dict[str, str], int]]:
    """A filesystem ``layerstore serve`` with ``workers`` holding the image; URLs and its pid."""
    port = free_port()
    cfg = write_config(work / f"workers{workers}.yml", "filesystem",
                       {"rootdirectory": str(work / f"meta{workers}")}, port,
                       {"http": {"workers": workers}})
    argv = [sys.executable, "-m", "layerstore_core.cli", "serve", "--config", str(cfg)]
    with RegistryProcess(argv, port, work / f"workers{workers}.log") as server:
        server.wait_ready(60)
        push(layout, f"127.0.0.1:{port}", "meta/img:v1", policy)
        urls = {"head_blob": f"{server.url}/v2/meta/img/blobs/{layout.blob_digests[1]}",
                "get_manifest": f"{server.url}/v2/meta/img/manifests/v1"}
        _hey(urls["head_blob"], "HEAD", 2, 32, server.proc.pid)  # warm every worker
        yield urls, server.proc.pid


def metadata(work: Path, layout: ImageLayout, policy: Path, seconds: float, concurrency: int,
             rounds: int) -> dict[int, dict[str, dict[str, float]]]:
    """Both servers up at once, measured in alternating rounds (1, 2, 1, 2, …): the machine's
    load drifts less between the two than between two runs one after the other. Medians."""
    samples: dict[int, dict[str, list[dict[str, float]]]] = {1: {}, 2: {}}
    with contextlib.ExitStack() as stack:
        servers = {n: stack.enter_context(metadata_server(work, n, layout, policy))
                   for n in (1, 2)}
        for _ in range(rounds):
            for key, method in (("head_blob", "HEAD"), ("get_manifest", "GET")):
                for n, (urls, pid) in servers.items():
                    samples[n].setdefault(key, []).append(
                        _hey(urls[key], method, seconds, concurrency, pid))
    return {n: {key: {field: statistics.median(r[field] for r in runs) for field in runs[0]}
                for key, runs in by_key.items()} for n, by_key in samples.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pulls", type=int, default=50)
    ap.add_argument("--big-pulls", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--only", choices=["pulls", "metadata"])
    args = ap.parse_args()
    if args.only != "pulls" and not shutil.which("hey"):
        sys.exit("the metadata part needs hey, a native HTTP load generator: apt-get install hey")
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        work = Path(tmp)
        policy = write_policy(work / "policy.json")
        images = {"small": build_oci_layout(work / "small", [64 * 1024, 300 * 1024], seed=1),
                  "big": build_oci_layout(work / "big", [1 * MiB, 32 * MiB, 200 * MiB], seed=2)}
        pulls = {"small": args.pulls, "big": args.big_pulls}
        if args.only != "metadata":
            report_pulls(work, images, pulls, policy)
        if args.only != "pulls":
            report_metadata(work, images["small"], policy, args.seconds, args.concurrency,
                            args.rounds)


def report_pulls(work: Path, images: dict[str, ImageLayout], pulls: dict[str, int],
                 policy: Path) -> None:
    moto = Moto(work)
    try:
        plain = fleet_pulls(work, moto, False, images, pulls, policy)
        cached = fleet_pulls(work, moto, True, images, pulls, policy)
    finally:
        moto.stop()
    print("fleet of 3 on moto S3 behind nginx, redirects off")
    print(f"{'image':6} {'pulls':>5} {'cache':>7} {'backend req/pull':>17} "
          f"{'p50 s':>7} {'max s':>7} {'wall s':>7}")
    for kind in images:
        for label, res in (("none", plain[kind]), ("redis", cached[kind])):
            print(f"{kind:6} {pulls[kind]:5} {label:>7} {res['backend_per_pull']:17.1f} "
                  f"{res['p50']:7.2f} {res['max']:7.2f} {res['wall']:7.2f}")
        ratio = cached[kind]["backend_per_pull"] / plain[kind]["backend_per_pull"]
        print(f"{kind:6} backend requests with the cache / without: {ratio:.2f} "
              "(target <= 0.5)")


def report_metadata(work: Path, image: ImageLayout, policy: Path, seconds: float,
                    concurrency: int, rounds: int) -> None:
    load = os.getloadavg()[0]
    results = metadata(work, image, policy, seconds, concurrency, rounds)
    one, two = results[1], results[2]
    print(f"\nmetadata requests/s on the filesystem: hey on one core, {concurrency} connections,"
          f" median of {rounds} alternating rounds of {seconds:.0f} s (load average {load:.1f}"
          f" before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores)")
    print(f"{'':13} {'workers':>7} {'req/s':>8} {'server us/req':>14} {'server cores':>13} "
          f"{'hey cores':>10}")
    for key in ("head_blob", "get_manifest"):
        for n, res in ((1, one[key]), (2, two[key])):
            print(f"{key:13} {n:7} {res['rps']:8.0f} {res['server_us']:14.0f} "
                  f"{res['server_cores']:13.2f} {res['client_cores']:10.2f}")
        print(f"{key:13} 2 workers / 1: {two[key]['rps'] / one[key]['rps']:.2f} (target ~2 when"
              " the server has two idle cores; here hey takes up to one of them)")


if __name__ == "__main__":
    main()
