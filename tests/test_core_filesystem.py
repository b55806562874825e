"""Filesystem specifics the shared suite cannot see: the on-disk mapping, atomicity, resume."""

import ctypes
import hashlib
import mmap
import os
import subprocess
import sys
from pathlib import Path

import pytest

from layerstore_core import (
    PathNotFoundError,
    RangeInvalidError,
    Registry,
    StorageDriverError,
    load_driver,
)
from layerstore_core.drivers import filesystem
from layerstore_core.drivers.filesystem import TEMP_PREFIX, FilesystemDriver, FilesystemParams
from layerstore_core.registry import paths as p
from layerstore_core.registry import uploads
from layerstore_core.registry.blobs import BlobStore


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def fs(root: Path) -> FilesystemDriver:
    return FilesystemDriver(FilesystemParams(rootdirectory=str(root)))


def test_default_root_is_resolved_at_construction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    driver = load_driver("filesystem")
    assert isinstance(driver, FilesystemDriver)
    assert driver.root == str(tmp_path / "registry-data")
    monkeypatch.chdir("/")
    driver.put_content("/a", b"x")
    assert (tmp_path / "registry-data" / "a").read_bytes() == b"x"


def test_root_created_on_demand(fs: FilesystemDriver, root: Path) -> None:
    assert not root.exists()
    assert fs.stat("/").is_dir
    assert fs.list("/") == []
    assert list(fs.walk("/")) == []
    fs.put_content("/docker/registry/v2/blobs/data", b"blob")
    assert (root / "docker" / "registry" / "v2" / "blobs" / "data").read_bytes() == b"blob"


def test_temp_files_are_invisible(fs: FilesystemDriver, root: Path) -> None:
    fs.put_content("/dir/file", b"x")
    (root / "dir" / f"{TEMP_PREFIX}0123456789abcdef").write_bytes(b"crashed mid-put")
    (root / "dir" / "not valid name").write_bytes(b"?")
    assert fs.list("/dir") == ["/dir/file"]
    assert [i.path for i in fs.walk("/")] == ["/dir", "/dir/file"]
    fs.delete("/dir")
    assert not (root / "dir").exists()


def test_put_content_is_atomic_on_failure(
    fs: FilesystemDriver, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs.put_content("/file", b"old content")

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(filesystem.os, "replace", crash)
    with pytest.raises(StorageDriverError, match="No space left") as info:
        fs.put_content("/file", b"new content that never lands")
    assert info.value.driver == "filesystem"
    monkeypatch.undo()
    assert fs.get_content("/file") == b"old content"
    assert os.listdir(root) == ["file"]  # the temp file was removed


def test_put_content_replaces_the_inode(fs: FilesystemDriver, root: Path) -> None:
    """A reader holding the old file keeps reading the old bytes: the new file is a new inode."""
    fs.put_content("/file", b"A" * 100_000)
    with fs.reader("/file") as stream:
        fs.put_content("/file", b"B" * 100_000)
        assert stream.read() == b"A" * 100_000
    assert fs.get_content("/file") == b"B" * 100_000


def test_writer_writes_in_place(fs: FilesystemDriver, root: Path) -> None:
    writer = fs.writer("/uploads/id/data")
    writer.write(b"abc")
    writer.close()
    assert (root / "uploads" / "id" / "data").read_bytes() == b"abc"
    writer = fs.writer("/uploads/id/data", append=True)
    writer.cancel()
    assert not (root / "uploads" / "id" / "data").exists()


def _cached_pages(path: Path) -> int:
    """Pages of ``path`` in the page cache (Linux ``mincore`` on a private mapping of it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    size = path.stat().st_size
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as m:
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = (ctypes.c_ubyte * pages)()
        addr = ctypes.c_void_p(ctypes.addressof(ctypes.c_char.from_buffer(m)))
        assert libc.mincore(addr, ctypes.c_size_t(size), vec) == 0, ctypes.get_errno()
        return sum(b & 1 for b in vec)


def test_uncached_writes_bypass_the_page_cache(fs: FilesystemDriver, root: Path) -> None:
    """Page-aligned uncached writes go to disk with O_DIRECT (Linux); the rest is buffered."""
    chunk = filesystem.DIRECT_MIN
    aligned = mmap.mmap(-1, chunk)  # page-aligned, as the proxy's chunk buffers
    aligned.write(bytes(range(256)) * (chunk // 256))
    writer = fs.writer("/up")
    writer.uncached = True
    writer.write(memoryview(aligned))  # offset 0: direct
    writer.write(memoryview(aligned))  # direct again
    writer.close()
    data = root / "up"
    assert _cached_pages(data) == 0
    writer = fs.writer("/up", append=True)
    writer.uncached = True
    writer.write(b"odd")  # too small, and leaves the offset unaligned
    writer.write(memoryview(aligned))  # unaligned offset: buffered
    writer.commit()
    expected = aligned[:] * 2 + b"odd" + aligned[:]
    assert fs.get_content("/up") == expected


def test_continues_an_upload_file_left_by_another_registry(
    fs: FilesystemDriver, root: Path
) -> None:
    """Distribution leaves ``_uploads/<id>/data`` as a plain file; we append at its size."""
    data = root / "docker/registry/v2/repositories/r/_uploads/u1/data"
    data.parent.mkdir(parents=True)
    data.write_bytes(b"x" * 12345)
    writer = fs.writer("/docker/registry/v2/repositories/r/_uploads/u1/data", append=True)
    assert writer.size == 12345
    writer.write(b"tail")
    writer.commit()
    assert data.read_bytes() == b"x" * 12345 + b"tail"


def test_resume_in_another_process(fs: FilesystemDriver, root: Path) -> None:
    child = (
        "from layerstore_core import load_driver\n"
        f"w = load_driver('filesystem', rootdirectory={str(root)!r}).writer('/up')\n"
        "w.write(b'head-'); w.close()\n"
    )
    subprocess.run([sys.executable, "-c", child], check=True, timeout=120)
    writer = fs.writer("/up", append=True)
    assert writer.size == 5
    writer.write(b"tail")
    writer.commit()
    assert fs.get_content("/up") == b"head-tail"


def test_errors_are_translated(fs: FilesystemDriver) -> None:
    fs.put_content("/file", b"x")
    fs.put_content("/dir/child", b"y")
    for call in (
        lambda: fs.get_content("/dir"),  # a directory is not content
        lambda: fs.get_content("/file/below"),  # ENOTDIR
        lambda: fs.reader("/dir"),
        lambda: fs.list("/file"),
        lambda: fs.stat("/file/below"),
        lambda: fs.delete("/file/below"),
    ):
        with pytest.raises(PathNotFoundError) as info:
            call()
        assert info.value.driver == "filesystem"
    with pytest.raises(StorageDriverError, match="parent of the path is a file") as err:
        fs.put_content("/file/below", b"z")
    assert err.value.driver == "filesystem" and err.value.path == "/file/below"
    assert fs.get_content("/file") == b"x"


def test_move_onto_a_directory_replaces_it(fs: FilesystemDriver) -> None:
    fs.put_content("/src", b"new")
    fs.put_content("/dst/old", b"old")
    fs.move("/src", "/dst")
    assert fs.get_content("/dst") == b"new"


def test_stat_reports_mtime_in_utc(fs: FilesystemDriver, root: Path) -> None:
    fs.put_content("/f", b"1234")
    os.utime(root / "f", (1_700_000_000, 1_700_000_000))
    info = fs.stat("/f")
    assert info.modified.timestamp() == 1_700_000_000
    assert info.modified.utcoffset() is not None and not info.modified.utcoffset()
    assert info.size == 4 and not info.is_dir


def test_patch_racing_commit_cannot_reach_the_blob(
    fs: FilesystemDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rival claiming in the window between a commit and its move is refused.

    The rival writes at the moment the file is renamed (``os.replace``): the committing
    writer still holds the lock then, so the rival's bytes never reach the destination.
    """
    from layerstore_core import WriteConflictError

    fs.put_content("/up/data", b"verified")
    committing = fs.writer("/up/data", append=True)
    rival = fs.writer("/up/data", append=True)
    real_replace = os.replace
    outcome: list[str] = []

    def racing_replace(src: str, dst: str) -> None:
        if not outcome:
            try:
                rival.write(b"-extra")
                rival.close()
                outcome.append("rival wrote")
            except WriteConflictError:
                outcome.append("rival refused")
        real_replace(src, dst)

    monkeypatch.setattr(filesystem.os, "replace", racing_replace)
    fs.commit_to(committing, "/blobs/data")
    assert outcome == ["rival refused"]
    assert fs.get_content("/blobs/data") == b"verified"
    with pytest.raises(PathNotFoundError):
        fs.stat("/up/data")


def _upload_with_data(blobs: BlobStore, data: bytes) -> str:
    upload = blobs.create_upload()
    upload.start_data()
    upload = blobs.resume_upload(upload.id)
    upload.write(data)
    upload.close()
    return upload.id


@pytest.mark.parametrize("case", ["sha512", "damaged-copy"])
def test_patch_racing_a_read_back_commit_cannot_reach_the_blob(
    fs: FilesystemDriver, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """A commit through ``commit()`` then ``move()``: a PATCH appending in between is refused.

    The rival resumes and appends at the last step before the move (``commit.marked``), after
    the data was committed in place and read back (a SHA-512 digest) or compared with a stored
    copy that is damaged. The move refuses the changed file (416), so the blob never holds
    the rival's bytes: it is absent, or still the damaged copy.
    """
    blobs = Registry(fs).repository("race/one").blobs
    data = b"verified bytes " * 100
    digest = ("sha512:" + hashlib.sha512(data).hexdigest() if case == "sha512"
              else "sha256:" + hashlib.sha256(data).hexdigest())
    blob = p.path_for(p.BlobDataPath(digest))
    damaged = b"X" * len(data)
    if case == "damaged-copy":
        fs.put_content(blob, damaged)
    upload_id = _upload_with_data(blobs, data)
    rivals: list[str] = []

    def rival_patch(step: str) -> None:
        if step == "commit.marked" and not rivals:
            rival = blobs.resume_upload(upload_id)
            rival.write(b"-unverified")
            rival.close()
            rivals.append("appended")

    monkeypatch.setattr(uploads, "pause_point", rival_patch)
    with pytest.raises(RangeInvalidError):
        blobs.resume_upload(upload_id).commit(digest, len(data))
    assert rivals == ["appended"]
    if case == "sha512":
        with pytest.raises(PathNotFoundError):
            fs.stat(blob)
    else:
        assert fs.get_content(blob) == damaged
    assert not blobs.exists(digest)


def test_move_committed_refuses_a_rival_still_writing(fs: FilesystemDriver) -> None:
    from layerstore_core import WriteConflictError

    fs.put_content("/up/data", b"verified")
    committing = fs.writer("/up/data", append=True)
    committing.commit()
    rival = fs.writer("/up/data", append=True)
    rival.write(b"-extra")  # holds the lock, its bytes still buffered
    with pytest.raises(WriteConflictError):
        fs.move_committed(committing, "/blobs/data")
    rival.close()
    with pytest.raises(WriteConflictError):  # it changed the file since the commit
        fs.move_committed(committing, "/blobs/data")
    with pytest.raises(PathNotFoundError):
        fs.stat("/blobs/data")


def test_rival_first_chunks_of_an_upload_without_data(fs: FilesystemDriver) -> None:
    """An upload started without its empty data write (Distribution's, or an older one).

    Two requests resume it before either writes: the first creates the data file, the second
    is refused (416) instead of truncating the first's chunk; the upload commits the first's.
    """
    blobs = Registry(fs).repository("race/one").blobs
    upload_id = blobs.create_upload().id  # startedat only, as before start_data
    first, second = blobs.resume_upload(upload_id), blobs.resume_upload(upload_id)
    mine, theirs = b"first chunk " * 50, b"rival chunk " * 50
    first.write(mine)
    first.close()
    with pytest.raises(RangeInvalidError):
        second.write(theirs)
    second.close()
    upload = blobs.resume_upload(upload_id)
    assert upload.offset == len(mine)
    digest = "sha256:" + hashlib.sha256(mine).hexdigest()
    upload.commit(digest, len(mine))
    with blobs.open(digest) as stream:
        assert stream.read() == mine
