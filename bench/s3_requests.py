"""S3 requests by operation for one skopeo push + pull: layerstore serve vs Distribution 2.8.2.

Usage: python bench/s3_requests.py [--layers 1,32,200] [--chunksize-mib 10] [--cache inmemory]
       [--json] [--trace]

Both servers run in the same run against one moto server, each on its own bucket, with 10 MiB
parts (``chunksize``), behind a counting proxy (``tests/s3proxy.py``) that names each request's
S3 operation. Redirected blob GETs go to the proxy too, so every backend request is counted.
Then, for each server, one upload gets a chunk and its status is read with GET: the writes that
GET made are reported (target 0). Prints per-operation counts, totals and the ratio
layerstore / Distribution (target <= 0.5). ``--cache inmemory`` gives both servers
``storage.cache.blobdescriptor: inmemory`` (Distribution's sample config has it; neither
server caches without it).

``--trace`` also puts a proxy in front of each registry and prints, in order, every registry
HTTP request of the push + pull with the S3 requests (operation and key) that followed it, then
the S3 operations per kind of registry request. skopeo pushes layers in parallel, so the S3
requests are attributed exactly only with one layer (``--layers 32 --trace``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

# The repository root goes first, so that `tests` imports.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402 - after sys.path is fixed

from tests.backends._servers import free_port  # noqa: E402 - the repository root goes first
from tests.backends.s3 import moto_server  # noqa: E402
from tests.images import (  # noqa: E402
    ImageLayout,
    MiB,
    RegistryProcess,
    build_oci_layout,
    read_oci_layout,
    skopeo,
    write_config,
    write_policy,
)
from tests.s3proxy import WRITES, S3Proxy  # noqa: E402

DISTRIBUTION = "/usr/bin/docker-registry"
SERVERS = ("layerstore", "distribution")
KEYS = {"accesskey": "testing", "secretkey": "testing", "region": "us-east-1"}


def _params(server: str, bucket: str, endpoint: str, chunksize: int) -> dict[str, Any]:
    params: dict[str, Any] = {**KEYS, "bucket": bucket, "regionendpoint": endpoint,
                              "secure": False, "chunksize": chunksize}
    if server == "layerstore":
        params["forcepathstyle"] = True  # Distribution forces path style for any regionendpoint
    return params


def _start(server: str, config: Path, port: int, log: Path) -> RegistryProcess:
    env = dict(os.environ)
    if server == "layerstore":
        return RegistryProcess.layerstore(config, port, log, env).wait_ready(60)
    env.pop("AWS_CA_BUNDLE", None)  # Distribution's s3 driver panics on it
    return RegistryProcess([DISTRIBUTION, "serve", str(config)], port, log, env).wait_ready(60)


def _push_pull(url: str, image: ImageLayout, work: Path, policy: Path) -> None:
    ref = f"docker://{url.removeprefix('http://')}/bench/image:v1"
    push = skopeo("copy", "--dest-tls-verify=false", f"oci:{image.path}:v1", ref, policy=policy)
    if push.returncode:
        raise RuntimeError(f"push failed: {push.stderr}")
    out = work / "pulled"
    pull = skopeo("copy", "--src-tls-verify=false", ref, f"oci:{out}:v1", policy=policy)
    if pull.returncode:
        raise RuntimeError(f"pull failed: {pull.stderr}")
    assert read_oci_layout(out, "v1") == (image.manifest_digest, image.blob_digests)
    shutil.rmtree(out)


def _status_writes(url: str, proxy: S3Proxy) -> dict[str, int]:
    """Start an upload, send one chunk, then count what ``GET`` of its status sends to S3."""
    with httpx.Client(base_url=url, timeout=60) as c:
        started = c.post("/v2/bench/status/blobs/uploads/")
        started.raise_for_status()
        patched = c.patch(started.headers["location"], content=b"x" * MiB,
                          headers={"Content-Type": "application/octet-stream"})
        patched.raise_for_status()
        with proxy.counting() as seen:
            c.get(patched.headers["location"]).raise_for_status()
        c.delete(patched.headers["location"])
    return dict(seen)


class Trace:
    """Registry requests and the S3 requests after each, in the order the proxies saw them."""

    def __init__(self, bucket: str) -> None:
        self._bucket = f"/{bucket}/"
        self._lock = threading.Lock()
        self.requests: list[tuple[str, list[str]]] = []

    def registry(self, _op: str, request: str) -> None:
        with self._lock:
            self.requests.append((_shorten(request.split("?_state=")[0]), []))

    def s3(self, op: str, request: str) -> None:
        key = request.partition(" ")[2].split("?")[0].removeprefix(self._bucket)
        with self._lock:
            if self.requests:
                self.requests[-1][1].append(f"{op} {_shorten(key)}")

    def print(self, server: str) -> None:
        print(f"\n== {server}: registry requests and the S3 requests each made")
        kinds: dict[str, collections.Counter[str]] = {}
        for request, s3 in self.requests:
            print(f"{request}  [{len(s3)}]")
            for line in s3:
                print(f"    {line}")
            kind = re.sub(r"\?.*", "", re.sub(r"<[a-z]+>", "*", request))
            kinds.setdefault(kind, collections.Counter()).update(
                {"requests": 1, **collections.Counter(line.split()[0] for line in s3)})
        print(f"\n== {server}: S3 operations per kind of registry request")
        for kind, ops in kinds.items():
            n = ops.pop("requests")
            each = ", ".join(f"{op} {c / n:g}" for op, c in sorted(ops.items()))
            print(f"{kind}  x{n}: {sum(ops.values()) / n:g} each ({each})")


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DIGEST = re.compile(r"(sha256[:-]|sha256/[0-9a-f]{2}/)[0-9a-f]{64}")


def _shorten(text: str) -> str:
    return _DIGEST.sub("<digest>", _UUID.sub("<id>", text))


def _front(url: str, trace: Trace | None) -> tuple[str, S3Proxy | None]:
    """The URL skopeo talks to: the registry's, or a tracing proxy's in front of it."""
    if trace is None:
        return url, None
    front = S3Proxy(url).start()
    front.tracer = trace.registry
    return front.url, front


def run_server(server: str, proxy: S3Proxy, moto: str, image: ImageLayout, work: Path,
               policy: Path, chunksize: int, trace: bool = False,
               cache: str | None = None) -> dict[str, Any]:
    import boto3

    bucket = f"bench-{server}"
    boto3.client("s3", endpoint_url=moto, aws_access_key_id="testing",
                 aws_secret_access_key="testing", region_name="us-east-1").create_bucket(
        Bucket=bucket)
    port = free_port()
    config = write_config(work / f"{server}.yml", "s3",
                          _params(server, bucket, proxy.url, chunksize), port,
                          {"log": {"level": "error"},
                           **({"storage": {"cache": {"blobdescriptor": cache}}} if cache else {})})
    proc = _start(server, config, port, work / f"{server}.log")
    tracing = Trace(bucket) if trace else None
    front: S3Proxy | None = None
    try:
        url, front = _front(proc.url, tracing)
        proxy.tracer = tracing.s3 if tracing else None
        with proxy.counting() as seen:
            _push_pull(url, image, work, policy)
        proxy.tracer = None
        status = _status_writes(proc.url, proxy)
    finally:
        proxy.tracer = None
        if front is not None:
            front.stop()
        proc.stop()
    if tracing is not None:
        tracing.print(server)
    return {"push_pull": dict(seen), "status_get": status,
            "status_get_writes": sum(n for op, n in status.items() if op in WRITES)}


def report(results: dict[str, dict[str, Any]]) -> None:
    ops = sorted({op for r in results.values() for op in r["push_pull"]})
    print(f"\n{'S3 operation':28}" + "".join(f"{s:>14}" for s in results))
    for op in ops:
        print(f"{op:28}" + "".join(f"{r['push_pull'].get(op, 0):>14}" for r in results.values()))
    totals = {s: sum(r["push_pull"].values()) for s, r in results.items()}
    print(f"{'total':28}" + "".join(f"{t:>14}" for t in totals.values()))
    writes = "".join(f"{r['status_get_writes']:>14}" for r in results.values())
    print(f"{'writes by GET upload status':28}{writes}")
    if len(totals) == 2:
        ratio = totals["layerstore"] / totals["distribution"]
        print(f"\nratio layerstore / distribution: {ratio:.2f} (target <= 0.50)")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--layers", default="1,32,200", help="layer sizes in MiB")
    ap.add_argument("--chunksize-mib", type=int, default=10, help="S3 part size (chunksize)")
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--json", action="store_true", help="print the counts as one JSON document")
    ap.add_argument("--trace", action="store_true",
                    help="list each registry request with the S3 requests it made")
    ap.add_argument("--cache", choices=["inmemory"],
                    help="storage.cache.blobdescriptor for both servers (default: none)")
    args = ap.parse_args()
    servers = args.servers.split(",")
    for tool in ("skopeo", *([DISTRIBUTION] if "distribution" in servers else [])):
        if not shutil.which(tool):
            sys.exit(f"{tool} is required: apt-get install skopeo docker-registry")
    results: dict[str, dict[str, Any]] = collections.OrderedDict()
    with tempfile.TemporaryDirectory(prefix="bench-s3-requests-") as tmp:
        work = Path(tmp)
        image = build_oci_layout(work / "image", [int(float(s) * MiB)
                                                  for s in args.layers.split(",")], tag="v1")
        policy = write_policy(work / "policy.json")
        with moto_server() as moto, S3Proxy(moto) as proxy:
            for server in servers:
                results[server] = run_server(server, proxy, moto, image, work, policy,
                                             args.chunksize_mib * MiB, args.trace, args.cache)
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    else:
        report(results)


if __name__ == "__main__":
    main()
