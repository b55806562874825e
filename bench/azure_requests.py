"""Azure requests per registry upload step (POST, PATCH, status, PUT) on Azurite.

Starts Azurite (tests/azurite, `npm ci --prefix tests/azurite` first), then runs one chunked
upload through the registry layer in this process, as the HTTP handlers do: POST
(``create_upload``), for each chunk a PATCH (resume, write, close), a status request (resume,
offset, close) and at the end the PUT (resume, commit). The driver's service client counts every
HTTP request the SDK sends (``raw_request_hook``), named by method and ``comp``/``restype``.
Prints the requests of each step and per PATCH / status on average.

    python bench/azure_requests.py [--chunks 4] [--chunk-kib 600] [--chunksize-kib 256] [--json]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `tests` imports

from azure.storage.blob import BlobServiceClient  # noqa: E402 - after sys.path is fixed

from tests.backends.azure import Azurite  # noqa: E402

REPO = "bench/requests"


class Counter:
    """Every request the SDK sends, by step and by operation."""

    def __init__(self) -> None:
        self.step = "setup"
        self.counts: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )

    def hook(self, request: Any) -> None:
        http = request.http_request
        query = parse_qs(urlparse(http.url).query)
        op = http.method + "".join(f" {k}={query[k][0]}" for k in ("restype", "comp") if k in query)
        self.counts[self.step][op] += 1


def run(chunks: int, chunk_size: int, chunksize: int) -> dict[str, dict[str, int]]:
    from layerstore_azure import AzureDriver, AzureParams

    from layerstore_core import Registry

    counter = Counter()
    with tempfile.TemporaryDirectory(prefix="azure-requests-") as tmp:
        server = Azurite(Path(tmp))
        try:
            server.create_container()
            params = AzureParams(**server.params(rootdirectory="r", chunksize=chunksize))
            service = BlobServiceClient.from_connection_string(
                server.connection_string, raw_request_hook=counter.hook
            )
            driver = AzureDriver(params, service=service)
            blobs = Registry(driver).repository(REPO).blobs
            rng = random.Random(0)
            data = b""
            counter.step = "POST"
            upload = blobs.create_upload()
            upload.close()
            for i in range(chunks):
                body = rng.randbytes(chunk_size)
                counter.step = f"PATCH {i + 1}"
                upload = blobs.resume_upload(upload.id, expect_data=bool(data))
                upload.write(body)
                upload.close()
                data += body
                counter.step = f"status {i + 1}"
                upload = blobs.resume_upload(upload.id, expect_data=True)
                assert upload.offset == len(data)
                upload.close()
            counter.step = "PUT"
            upload = blobs.resume_upload(upload.id, expect_data=True)
            upload.commit("sha256:" + hashlib.sha256(data).hexdigest(), len(data))
            driver.close()
            service.close()
        finally:
            server.stop()
    return {step: dict(ops) for step, ops in counter.counts.items() if step != "setup"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--chunk-kib", type=int, default=600, help="bytes per PATCH, KiB")
    parser.add_argument("--chunksize-kib", type=int, default=256, help="the driver's block size")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    steps = run(args.chunks, args.chunk_kib * 1024, args.chunksize_kib * 1024)
    if args.json:
        print(json.dumps(steps, indent=2))
        return
    for step, ops in steps.items():
        detail = ", ".join(f"{op}: {n}" for op, n in sorted(ops.items()))
        print(f"{step:10} {sum(ops.values()):3}  {detail}")
    for kind in ("PATCH", "status"):
        totals = [sum(ops.values()) for step, ops in steps.items() if step.startswith(kind)]
        print(f"per {kind}: {sum(totals) / len(totals):.1f} requests (each: {totals})")


if __name__ == "__main__":
    main()
