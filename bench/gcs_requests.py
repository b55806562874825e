"""GCS requests by kind for one skopeo push + pull through ``layerstore serve`` on fake-gcs-server.

Usage: python bench/gcs_requests.py [--layers 1,32] [--chunksize-mib 8] [--json]

fake-gcs-server runs with its external URL set to a counting proxy (``tests/s3proxy.py``,
forwarding unchanged) in front of it, so resumable-session requests, whose URIs the server
hands out, pass the proxy too. Each request is classified from method, path and query
(:func:`gcs_operation`). Prints per-kind counts and the total.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The repository root goes first, so that `tests` imports.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.backends._servers import free_port, serve  # noqa: E402 - after sys.path is fixed
from tests.backends.gcs import BUCKET, _fake_gcs_binary, raw_client  # noqa: E402
from tests.images import (  # noqa: E402
    MiB,
    RegistryProcess,
    build_oci_layout,
    read_oci_layout,
    skopeo,
    write_config,
    write_policy,
)
from tests.s3proxy import S3Proxy  # noqa: E402


def gcs_operation(request: str) -> str:
    """The JSON API operation of ``"METHOD /path?query"``."""
    method, _, target = request.partition(" ")
    split = urllib.parse.urlsplit(target)
    query = urllib.parse.parse_qs(split.query)
    if split.path.startswith("/upload/"):
        if "upload_id" in query:
            return f"session {method}"
        return f"upload ({query.get('uploadType', ['?'])[0]})"
    if split.path.endswith("/compose"):
        return "compose"
    if "/rewriteTo/" in split.path:
        return "rewrite"
    if method == "GET" and split.path.rstrip("/").endswith("/o"):
        return "list"
    if method == "GET":
        return "get (media)" if query.get("alt") == ["media"] else "get (metadata)"
    return f"{method} object" if "/o/" in split.path else f"{method} {split.path}"


@contextmanager
def counted_fake_gcs() -> Iterator[tuple[str, collections.Counter[str]]]:
    """fake-gcs-server behind a counting proxy: the proxy's URL and the counts it fills."""
    proxy_port, port = free_port(), free_port()
    front = f"http://127.0.0.1:{proxy_port}"
    url = f"http://127.0.0.1:{port}"
    cmd = [str(_fake_gcs_binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
           "-backend", "memory", "-external-url", front, "-public-host", f"127.0.0.1:{proxy_port}",
           "-log-level", "error"]
    counts: collections.Counter[str] = collections.Counter()
    with serve("gcs-fake", cmd, url + "/_internal/healthcheck"):
        raw_client(url).create_bucket(BUCKET)
        with S3Proxy(url, port=proxy_port) as proxy:
            proxy.tracer = lambda _op, request: counts.update([gcs_operation(request)])
            yield proxy.url, counts


def push_pull(layers: list[int], chunksize: int) -> dict[str, int]:
    with tempfile.TemporaryDirectory(prefix="bench-gcs-requests-") as tmp, \
            counted_fake_gcs() as (endpoint, counts):
        work = Path(tmp)
        image = build_oci_layout(work / "image", layers, tag="v1")
        policy = write_policy(work / "policy.json")
        port = free_port()
        params = {"bucket": BUCKET, "endpoint": endpoint, "anonymous": True, "project": "bench",
                  "chunksize": chunksize, "rootdirectory": "/bench"}
        config = write_config(work / "layerstore.yml", "gcs", params, port,
                              {"log": {"level": "error"}})
        proc = RegistryProcess.layerstore(config, port, work / "layerstore.log").wait_ready(60)
        try:
            counts.clear()
            ref = f"docker://127.0.0.1:{port}/bench/image:v1"
            push = skopeo("copy", "--dest-tls-verify=false", f"oci:{image.path}:v1", ref,
                          policy=policy)
            if push.returncode:
                raise RuntimeError(f"push failed: {push.stderr}")
            pull = skopeo("copy", "--src-tls-verify=false", ref, f"oci:{work / 'out'}:v1",
                          policy=policy)
            if pull.returncode:
                raise RuntimeError(f"pull failed: {pull.stderr}")
            assert read_oci_layout(work / "out", "v1") == (image.manifest_digest,
                                                           image.blob_digests)
            return dict(counts)
        finally:
            proc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--layers", default="1,32", help="layer sizes in MiB")
    ap.add_argument("--chunksize-mib", type=int, default=8, help="GCS chunksize")
    ap.add_argument("--json", action="store_true", help="print the counts as one JSON document")
    args = ap.parse_args()
    if not shutil.which("skopeo"):
        sys.exit("skopeo is required: apt-get install skopeo")
    layers = [int(float(s) * MiB) for s in args.layers.split(",")]
    counts = push_pull(layers, args.chunksize_mib * MiB)
    if args.json:
        print(json.dumps(counts, indent=2, sort_keys=True))
        return
    for op in sorted(counts):
        print(f"{op:24}{counts[op]:>8}")
    print(f"{'total':24}{sum(counts.values()):>8}")


if __name__ == "__main__":
    main()
