"""Blob uploads on every backend: resumes in fresh processes, commit rules, concurrency.

This module is also a script: ``python tests/test_registry_uploads.py DRIVER PARAMS ...`` resumes
an upload in a fresh process, writes one chunk, closes it and prints how many bytes it read back
from the backend (the subprocess-per-chunk test runs it).
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from layerstore_core import (
    BlobUnknownError,
    BlobUploadUnknownError,
    DigestInvalidError,
    Registry,
    SizeInvalidError,
    StorageDriver,
    load_driver,
)
from layerstore_core.driver import FileInfo, FileWriter
from layerstore_core.registry import paths as p
from layerstore_core.testing import Backend

REPO = "test/img"
CHUNKS = [300_001, 262_144, 77, 1, 500_000]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chunk(i: int) -> bytes:
    return random.Random(i).randbytes(CHUNKS[i])


class _CountingReader:
    def __init__(self, inner: IO[bytes], owner: CountingDriver) -> None:
        self._inner = inner
        self._owner = owner

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        self._owner.bytes_read += len(data)
        return data

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> _CountingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CountingDriver(StorageDriver):
    """Delegates to a real driver and counts bytes of upload/blob data read back from it."""

    name = "counting"
    Params = dict

    def __init__(self, inner: StorageDriver) -> None:
        self.inner = inner
        self.bytes_read = 0

    def _get_content(self, path: str) -> bytes:
        data = self.inner.get_content(path)
        if path.endswith("/data"):
            self.bytes_read += len(data)
        return data

    def _put_content(self, path: str, data: bytes) -> None:
        self.inner.put_content(path, data)

    def _reader(self, path: str, offset: int) -> IO[bytes]:
        return _CountingReader(self.inner.reader(path, offset), self)  # type: ignore[return-value]

    def _writer(self, path: str, append: bool) -> FileWriter:
        return self.inner.writer(path, append)

    def _stat(self, path: str) -> FileInfo:
        return self.inner.stat(path)

    def _list(self, path: str) -> list[str]:
        return self.inner.list(path)

    def _move(self, source: str, dest: str) -> None:
        self.inner.move(source, dest)

    def _delete(self, path: str) -> None:
        self.inner.delete(path)

    def _redirect_url(self, path: str, method: str) -> str | None:
        return self.inner.redirect_url(path, method)

    def _walk(self, path: str) -> Iterator[FileInfo]:
        return self.inner.walk(path)


def write_chunk(driver: StorageDriver, upload_id: str, index: int) -> int:
    """Resume ``upload_id`` on a fresh Registry, write chunk ``index``, close; bytes read back."""
    counting = CountingDriver(driver)
    upload = Registry(counting).repository(REPO).blobs.resume_upload(upload_id)
    assert upload.offset == sum(CHUNKS[:index])
    upload.write(chunk(index))
    upload.close()
    return counting.bytes_read


def run_chunk(backend: Backend, upload_id: str, index: int) -> int:
    if not backend.cross_process:
        return write_chunk(backend.make(), upload_id, index)
    args = [
        sys.executable,
        __file__,
        backend.driver,
        json.dumps(backend.params),
        upload_id,
        str(index),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def registry(any_backend: Backend) -> Registry:
    return Registry(any_backend.make())


def test_upload_chunk_per_process_reads_nothing_back(any_backend: Backend) -> None:
    blobs = Registry(any_backend.make()).repository(REPO).blobs
    upload = blobs.create_upload()
    upload.close()
    read_back = [run_chunk(any_backend, upload.id, i) for i in range(len(CHUNKS))]
    assert read_back == [0] * len(CHUNKS)
    final = Registry(CountingDriver(any_backend.make())).repository(REPO).blobs
    resumed = final.resume_upload(upload.id)
    data = b"".join(chunk(i) for i in range(len(CHUNKS)))
    desc = resumed.commit(digest_of(data), len(data))
    assert (desc.digest, desc.size) == (digest_of(data), len(data))
    with blobs.open(desc.digest) as reader:
        assert hashlib.sha256(reader.read()).hexdigest() == desc.digest.split(":")[1]


def test_only_latest_hash_state_is_kept(registry: Registry) -> None:
    upload = registry.repository(REPO).blobs.create_upload()
    for i in range(3):
        upload.write(chunk(i))
        upload.close()
        upload = registry.repository(REPO).blobs.resume_upload(upload.id)
    states = registry.driver.list(p.path_for(p.UploadHashStatesPath(REPO, upload.id, "sha256")))
    assert [s.rsplit("/", 1)[1] for s in states] == [str(sum(CHUNKS[:3]))]
    assert len(registry.driver.get_content(states[0])) == 108


def test_resume_without_state_rehashes(any_backend: Backend) -> None:
    registry = Registry(any_backend.make())
    upload = registry.repository(REPO).blobs.create_upload()
    upload.write(chunk(0))
    upload.close()
    registry.driver.delete(p.path_for(p.UploadHashStatesPath(REPO, upload.id, "sha256")))
    counting = CountingDriver(any_backend.make())
    resumed = Registry(counting).repository(REPO).blobs.resume_upload(upload.id)
    resumed.write(chunk(1))
    data = chunk(0) + chunk(1)
    assert resumed.commit(digest_of(data)).size == len(data)
    # re-read at resume (where the backend shows the prefix) or at commit: never silently wrong
    assert counting.bytes_read >= len(chunk(0))


def test_zero_byte_blob(registry: Registry) -> None:
    blobs = registry.repository(REPO).blobs
    desc = blobs.create_upload().commit(digest_of(b""), 0)
    assert blobs.stat(desc.digest).size == 0
    with blobs.open(desc.digest) as reader:
        assert reader.read() == b""


def test_zero_byte_blob_after_close_and_resume(registry: Registry) -> None:
    blobs = registry.repository(REPO).blobs
    upload = blobs.create_upload()
    upload.close()
    assert blobs.resume_upload(upload.id).commit(digest_of(b"")).size == 0


def _assert_nothing_visible(registry: Registry, upload_id: str, digest: str) -> None:
    blobs = registry.repository(REPO).blobs
    with pytest.raises(BlobUnknownError):
        blobs.stat(digest)
    with pytest.raises(BlobUploadUnknownError):
        blobs.resume_upload(upload_id)
    files = [i.path for i in registry.driver.walk("/") if not i.is_dir]
    assert not [f for f in files if "/blobs/" in f or "/_layers/" in f or "/_uploads/" in f]


@pytest.mark.parametrize("wrong", ["digest", "size"])
def test_mismatch_cancels_and_shows_nothing(registry: Registry, wrong: str) -> None:
    upload = registry.repository(REPO).blobs.create_upload()
    upload.write(b"some bytes")
    good = digest_of(b"some bytes")
    if wrong == "digest":
        with pytest.raises(DigestInvalidError) as err:
            upload.commit(digest_of(b"other bytes"), 10)
        assert err.value.code == "DIGEST_INVALID"
        _assert_nothing_visible(registry, upload.id, digest_of(b"other bytes"))
    else:
        with pytest.raises(SizeInvalidError) as err2:
            upload.commit(good, 11)
        assert err2.value.code == "SIZE_INVALID"
    _assert_nothing_visible(registry, upload.id, good)
    with pytest.raises(BlobUploadUnknownError):
        upload.write(b"more")


def test_commit_of_existing_blob(registry: Registry) -> None:
    blobs = registry.repository(REPO).blobs
    other = registry.repository("test/other").blobs
    for store in (blobs, blobs, other):
        upload = store.create_upload()
        upload.write(b"same content")
        upload.close()
        assert store.resume_upload(upload.id).commit(digest_of(b"same content")).size == 12
    assert other.stat(digest_of(b"same content")).size == 12
    assert not [i for i in registry.driver.walk("/") if "/_uploads/" in i.path]


def test_cancel(registry: Registry) -> None:
    blobs = registry.repository(REPO).blobs
    upload = blobs.create_upload()
    upload.write(b"abc")
    upload.close()
    resumed = blobs.resume_upload(upload.id)
    resumed.cancel()
    _assert_nothing_visible(registry, upload.id, digest_of(b"abc"))
    with pytest.raises(BlobUploadUnknownError):
        resumed.commit(digest_of(b"abc"))


@pytest.mark.parametrize("upload_id", ["nope", "../../x", "", "a/b", "..", "x" * 200])
def test_resume_unknown(registry: Registry, upload_id: str) -> None:
    with pytest.raises(BlobUploadUnknownError) as err:
        registry.repository(REPO).blobs.resume_upload(upload_id)
    assert (err.value.code, err.value.status) == ("BLOB_UPLOAD_UNKNOWN", 404)


@pytest.mark.parametrize("expect_data", [False, True], ids=["token-offset-0", "token-offset-n"])
@pytest.mark.parametrize("finish", ["commit", "cancel"])
def test_resume_with_token_hints_of_a_finished_upload(
    registry: Registry, finish: str, expect_data: bool
) -> None:
    """A token's start time spares reading startedat, never the check that the upload exists."""
    blobs = registry.repository(REPO).blobs
    upload = blobs.create_upload()
    upload.write(b"abc")
    upload.close()
    started = upload.started_at
    resumed = blobs.resume_upload(upload.id, started, True)
    assert (resumed.offset, resumed.started_at) == (3, started)
    if finish == "commit":
        resumed.commit(digest_of(b"abc"))
    else:
        resumed.cancel()
    with pytest.raises(BlobUploadUnknownError):
        blobs.resume_upload(upload.id, started, expect_data)
    assert not [i for i in registry.driver.walk("/") if "/_uploads/" in i.path]


def test_upload_properties(registry: Registry) -> None:
    upload = registry.repository(REPO).blobs.create_upload()
    upload.write(b"12345")
    upload.close()
    resumed = registry.repository(REPO).blobs.resume_upload(upload.id)
    assert (resumed.id, resumed.offset, resumed.started_at) == (upload.id, 5, upload.started_at)
    assert resumed.started_at.tzinfo is not None
    raw = registry.driver.get_content(p.path_for(p.UploadStartedAtPath(REPO, upload.id)))
    assert raw == upload.started_at.strftime("%Y-%m-%dT%H:%M:%SZ").encode()


def test_sha512_digest_commit(registry: Registry) -> None:
    upload = registry.repository(REPO).blobs.create_upload()
    upload.write(b"x" * 1000)
    digest = "sha512:" + hashlib.sha512(b"x" * 1000).hexdigest()
    assert upload.commit(digest).size == 1000
    assert registry.repository(REPO).blobs.stat(digest).size == 1000


def test_concurrent_commits_of_one_blob(any_backend: Backend) -> None:
    data = random.Random(7).randbytes(200_000)
    digest = digest_of(data)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)
    registry = Registry(any_backend.make())

    def push() -> None:
        try:
            upload = registry.repository(REPO).blobs.create_upload()
            upload.write(data)
            upload.close()
            upload = registry.repository(REPO).blobs.resume_upload(upload.id)
            barrier.wait()
            assert upload.commit(digest, len(data)).digest == digest
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=push) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    blob_files = [i.path for i in registry.driver.walk("/") if "/blobs/" in i.path and not i.is_dir]
    assert blob_files == [p.path_for(p.BlobDataPath(digest))]
    with registry.repository(REPO).blobs.open(digest) as reader:
        assert reader.read() == data
    assert not [i for i in registry.driver.walk("/") if "/_uploads/" in i.path and not i.is_dir]


def test_second_holder_of_a_committed_upload(registry: Registry) -> None:
    """Two requests resume one upload; after one commits, the other's commit is not a 500."""
    blobs = registry.repository(REPO).blobs
    upload = blobs.create_upload()
    upload.write(b"hello")
    upload.close()
    first, second = blobs.resume_upload(upload.id), blobs.resume_upload(upload.id)
    assert first.commit(digest_of(b"hello")).size == 5
    try:  # the blob is in place either way: success, or the upload is simply gone
        assert second.commit(digest_of(b"hello")).size == 5
    except BlobUploadUnknownError:
        pass
    assert blobs.stat(digest_of(b"hello")).size == 5
    assert not [i for i in registry.driver.walk("/") if "/_uploads/" in i.path and not i.is_dir]


def test_second_holder_of_a_cancelled_upload(registry: Registry) -> None:
    blobs = registry.repository(REPO).blobs
    upload = blobs.create_upload()
    upload.write(b"x")
    upload.close()
    first, second = blobs.resume_upload(upload.id), blobs.resume_upload(upload.id)
    first.cancel()
    try:  # some backends cannot tell at once; the upload is unknown either way
        second.write(b"y")
        second.close()
    except BlobUploadUnknownError:
        pass
    with pytest.raises(BlobUploadUnknownError):
        blobs.resume_upload(upload.id)


def _main(argv: list[str]) -> None:
    driver_name, params, upload_id, index = argv
    print(write_chunk(load_driver(driver_name, **json.loads(params)), upload_id, int(index)))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    _main(sys.argv[1:])
