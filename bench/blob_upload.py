"""Blob upload throughput: layerstore's resumable upload vs hashlib + plain file writes.

Uploads SIZE bytes in CHUNK-sized pieces on the filesystem driver, closing the upload after every
chunk and resuming it (a fresh Registry and driver each time, as another process would), then
commits. The baseline hashes the same bytes with hashlib.sha256 and writes them to a plain file,
once without fsync and once with one fsync at the end (the durability ``commit()`` gives;
``close()`` only flushes).
Prints MB/s, the ratios, the bytes read back from the backend during resumes, and peak RSS.

    python bench/blob_upload.py [--size-mib 1024] [--chunk-mib 8] [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO

from layerstore_core import Registry
from layerstore_core.drivers.filesystem import FilesystemDriver

MIB = 2**20


class CountingFilesystem(FilesystemDriver):
    """The filesystem driver, counting every byte read back through readers and get_content."""

    bytes_read = 0

    def _reader(self, path: str, offset: int) -> IO[bytes]:
        stream = super()._reader(path, offset)
        original = stream.read

        def read(n: int = -1) -> bytes:
            data = original(n)
            CountingFilesystem.bytes_read += len(data)
            return data

        stream.read = read  # type: ignore[method-assign]
        return stream

    def _get_content(self, path: str) -> bytes:
        data = super()._get_content(path)
        if path.endswith("/data"):
            CountingFilesystem.bytes_read += len(data)
        return data


def chunks(size: int, chunk: int) -> list[bytes]:
    """A few distinct random chunks, cycled (the data need not be 1 GiB of memory)."""
    rng = random.Random(42)
    pool = [rng.randbytes(chunk) for _ in range(4)]
    count, tail = divmod(size, chunk)
    out = [pool[i % 4] for i in range(count)]
    return out + ([pool[0][:tail]] if tail else [])


def run_layerstore(root: Path, data: list[bytes], digest: str) -> float:
    def registry() -> Registry:
        return Registry(CountingFilesystem.from_params({"rootdirectory": str(root)}))

    start = time.perf_counter()
    upload = registry().repository("bench/blob").blobs.create_upload()
    upload.close()
    for piece in data:
        upload = registry().repository("bench/blob").blobs.resume_upload(upload.id)
        upload.write(piece)
        upload.close()
    final = registry().repository("bench/blob").blobs.resume_upload(upload.id)
    desc = final.commit(digest, sum(map(len, data)))
    elapsed = time.perf_counter() - start
    assert desc.digest == digest
    return elapsed


def run_baseline(path: Path, data: list[bytes], fsync: bool) -> tuple[float, str]:
    start = time.perf_counter()
    hasher = hashlib.sha256()
    with open(path, "wb") as f:
        for piece in data:
            f.write(piece)
            hasher.update(piece)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    elapsed = time.perf_counter() - start
    return elapsed, "sha256:" + hasher.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; best is kept")
    args = parser.parse_args()
    size, chunk = args.size_mib * MIB, args.chunk_mib * MIB
    data = chunks(size, chunk)
    digest = "sha256:" + _digest(data)
    work = Path(tempfile.mkdtemp(prefix="blob-upload-bench-", dir=args.dir))
    ours = plain = synced = float("inf")
    rss_mib = 0.0
    try:
        for _ in range(args.rounds):  # interleaved, best of each: the machine is shared
            ours = min(ours, run_layerstore(work / "root", data, digest))
            rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            shutil.rmtree(work / "root")
            elapsed, plain_digest = run_baseline(work / "plain", data, fsync=False)
            plain = min(plain, elapsed)
            (work / "plain").unlink()
            synced = min(synced, run_baseline(work / "synced", data, fsync=True)[0])
            (work / "synced").unlink()
            assert plain_digest == digest
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mb = size / 1e6
    where = args.dir or tempfile.gettempdir()
    print(f"blob: {args.size_mib} MiB in {len(data)} chunks of {args.chunk_mib} MiB, filesystem")
    print(f"directory: {where}; best of {args.rounds} interleaved rounds")
    print(f"layerstore upload (close/resume per chunk): {mb / ours:8.1f} MB/s  ({ours:.2f} s)")
    print(f"baseline hashlib + file writes:             {mb / plain:8.1f} MB/s  ({plain:.2f} s)")
    print(f"baseline hashlib + writes + final fsync:    {mb / synced:8.1f} MB/s  ({synced:.2f} s)")
    print(f"ratio vs plain writes:            {plain / ours:.2f}  (target >= 0.9)")
    print(f"ratio vs writes + final fsync: {synced / ours:.2f}")
    print(
        f"bytes re-read during resumes: {CountingFilesystem.bytes_read // args.rounds}  (target 0)"
    )
    print(f"peak RSS (process, incl. the 4 x chunk source pool): {rss_mib:.0f} MiB")


def _digest(data: list[bytes]) -> str:
    hasher = hashlib.sha256()
    for piece in data:
        hasher.update(piece)
    return hasher.hexdigest()


if __name__ == "__main__":
    main()
