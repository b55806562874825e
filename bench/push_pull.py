"""Push and pull a ~250 MB image with skopeo: layerstore serve vs Distribution, same backend.

Usage: python bench/push_pull.py [--rounds 3] [--backends filesystem,s3] [--layers 1,32,200]

Each round starts each server afresh on an empty store (alternating layerstore / Distribution),
times ``skopeo copy oci:… docker://…`` (push) and ``docker://… → oci:`` (pull), and reads the
server's peak RSS (VmHWM). Prints medians and the ratio layerstore / Distribution (target ≤ 1.0).
S3 runs against a moto server when moto and the layerstore-s3 driver are installed;
``AWS_CA_BUNDLE`` is removed from Distribution's environment (its s3 driver panics on it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.backends._servers import free_port  # noqa: E402
from tests.images import (  # noqa: E402 - the repository root goes on sys.path first
    ImageLayout,
    MiB,
    RegistryProcess,
    build_oci_layout,
    read_oci_layout,
    skopeo,
    write_config,
    write_policy,
)

DISTRIBUTION = "/usr/bin/docker-registry"
S3_KEYS = {"accesskey": "testing", "secretkey": "testing", "region": "us-east-1"}


@contextlib.contextmanager
def moto_server(work: Path) -> Iterator[str]:
    port = free_port()
    log = open(work / "moto.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        for _ in range(300):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def make_bucket(endpoint: str, name: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                 aws_secret_access_key="testing", region_name="us-east-1").create_bucket(
        Bucket=name)


def storage_for(backend: str, work: Path, run: str, endpoint: str | None,
                server: str) -> tuple[str, dict[str, Any]]:
    if backend == "filesystem":
        return "filesystem", {"rootdirectory": str(work / f"root-{run}")}
    assert endpoint is not None
    bucket = f"bench-{run}"
    make_bucket(endpoint, bucket)
    params: dict[str, Any] = {**S3_KEYS, "bucket": bucket, "regionendpoint": endpoint,
                              "secure": False}
    if server == "layerstore":
        params["forcepathstyle"] = True
    return "s3", params


def start(server: str, config: Path, port: int, log: Path) -> RegistryProcess:
    env = dict(os.environ)
    if server == "layerstore":
        return RegistryProcess.layerstore(config, port, log, env).wait_ready(60)
    env.pop("AWS_CA_BUNDLE", None)
    return RegistryProcess([DISTRIBUTION, "serve", str(config)], port, log, env).wait_ready(60)


def one_round(server: str, backend: str, image: ImageLayout, work: Path, run: str,
              endpoint: str | None, policy: Path) -> dict[str, float]:
    port = free_port()
    driver, params = storage_for(backend, work, run, endpoint, server)
    config = write_config(work / f"config-{run}.yml", driver, params, port,
                          {"log": {"level": "error"}})
    proc = start(server, config, port, work / f"{run}.log")
    out = work / f"pulled-{run}"
    try:
        ref = f"docker://127.0.0.1:{port}/bench/image:v1"
        t0 = time.perf_counter()
        push = skopeo("copy", "--dest-tls-verify=false", f"oci:{image.path}:v1", ref,
                      policy=policy)
        t1 = time.perf_counter()
        if push.returncode:
            raise RuntimeError(f"{server} push failed: {push.stderr}")
        pull = skopeo("copy", "--src-tls-verify=false", ref, f"oci:{out}:v1", policy=policy)
        t2 = time.perf_counter()
        if pull.returncode:
            raise RuntimeError(f"{server} pull failed: {pull.stderr}")
        rss = proc.peak_rss_kib() / 1024
    finally:
        proc.stop()
    digest, blobs = read_oci_layout(out, "v1")
    assert (digest, blobs) == (image.manifest_digest, image.blob_digests), "digest mismatch"
    shutil.rmtree(out)
    if backend == "filesystem":
        shutil.rmtree(params["rootdirectory"], ignore_errors=True)
    return {"push": t1 - t0, "pull": t2 - t1, "rss": rss}


def report(backend: str, results: dict[str, list[dict[str, float]]], size_mb: float) -> None:
    print(f"\n== {backend}: {len(results['layerstore'])} rounds, image {size_mb:.0f} MB ==")
    print(f"{'':12}{'layerstore':>14}{'distribution':>14}{'ratio':>8}")
    for key, unit in (("push", "s"), ("pull", "s"), ("rss", "MiB")):
        ours = statistics.median(r[key] for r in results["layerstore"])
        theirs = statistics.median(r[key] for r in results["distribution"])
        label = f"{key} ({unit})" if key != "rss" else "peak RSS"
        print(f"{label:12}{ours:>14.2f}{theirs:>14.2f}{ours / theirs:>8.2f}")
    for key in ("push", "pull"):
        ours = statistics.median(r[key] for r in results["layerstore"])
        print(f"  layerstore {key}: {size_mb / ours:.0f} MB/s")


def run_backend(backend: str, rounds: int, image: ImageLayout, work: Path, policy: Path,
                endpoint: str | None) -> None:
    results: dict[str, list[dict[str, float]]] = {"layerstore": [], "distribution": []}
    for i in range(rounds):
        order = ("layerstore", "distribution") if i % 2 == 0 else ("distribution", "layerstore")
        for server in order:
            r = one_round(server, backend, image, work, f"{backend}-{server}-{i}", endpoint,
                          policy)
            results[server].append(r)
            print(f"  {backend} round {i + 1} {server:12} push {r['push']:6.2f}s "
                  f"pull {r['pull']:6.2f}s rss {r['rss']:7.1f} MiB", flush=True)
    report(backend, results, image.total_size / 1e6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backends", default="filesystem,s3")
    ap.add_argument("--layers", default="1,32,200", help="layer sizes in MiB")
    args = ap.parse_args()
    for tool in ("skopeo", DISTRIBUTION):
        if not shutil.which(tool):
            sys.exit(f"{tool} is required: apt-get install skopeo docker-registry")
    with tempfile.TemporaryDirectory(prefix="bench-push-pull-") as tmp:
        work = Path(tmp)
        sizes = [int(float(s) * MiB) for s in args.layers.split(",")]
        image = build_oci_layout(work / "image", sizes, tag="v1")
        policy = write_policy(work / "policy.json")
        runners: dict[str, Callable[[], None]] = {}
        backends = args.backends.split(",")
        if "filesystem" in backends:
            runners["filesystem"] = lambda: run_backend(
                "filesystem", args.rounds, image, work, policy, None)
        if "s3" in backends:
            if importlib.util.find_spec("moto") and importlib.util.find_spec("layerstore_s3"):
                def s3() -> None:
                    with moto_server(work) as endpoint:
                        run_backend("s3", args.rounds, image, work, policy, endpoint)
                runners["s3"] = s3
            else:
                print("s3: skipped (needs moto[server] and layerstore-s3 installed)")
        for run in runners.values():
            run()


if __name__ == "__main__":
    main()
