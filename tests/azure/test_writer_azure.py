"""Azure writes: staged blocks, resume from any process, the block-id scheme, restarts.

Writes go through the core's PartWriter over AzureBucket; these tests hold the properties the
old driver-private writer had (uniform ids, resume anywhere, orphans and stale blocks never
resumed, appends reusing committed blocks, tails surviving close, mixed fleets, limits).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import (
    BlobBlock,
    BlobSasPermissions,
    BlobServiceClient,
    ContainerClient,
    generate_blob_sas,
)
from layerstore_azure import AzureBucket, AzureDriver, AzureParams
from layerstore_azure.blocks import (
    BLOCK_ID_LENGTH,
    MAX_BLOCKS,
    TIER_BLOCKS,
    Block,
    Fence,
    block_size,
    new_session,
    parse_block,
    write_chain,
)
from layerstore_azure.config import MAX_BLOCK_SIZE, MiB

from layerstore_core.discovery import load_driver
from layerstore_core.driver import StorageDriver
from layerstore_core.errors import PathNotFoundError, StorageDriverError, WriteConflictError
from layerstore_core.objectstore import PartWriter, fence
from layerstore_core.testing import Backend
from tests.backends.azure import ACCOUNT, ACCOUNT_KEY, CONTAINER, Azurite

CHUNK = 256 * 1024
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def driver(backend_azure: Backend) -> Iterator[StorageDriver]:
    d = backend_azure.make()
    yield d
    d.close()


@pytest.fixture
def container(azurite: Azurite) -> Iterator[ContainerClient]:
    with ContainerClient.from_connection_string(azurite.connection_string, CONTAINER) as c:
        yield c


def blob_name(backend: Backend, path: str) -> str:
    return backend.params["rootdirectory"] + path


def block_lists(container: ContainerClient, name: str) -> tuple[list[str], list[str]]:
    committed, uncommitted = container.get_blob_client(name).get_block_list("all")
    return [b.id for b in committed], [b.id for b in uncommitted]


def run_child(backend: Backend, script: str, **args: Any) -> None:
    """Run ``script`` in a fresh interpreter with ``driver`` built from the backend's params."""
    prelude = (
        "import json, sys\n"
        "from layerstore_core.discovery import load_driver\n"
        "args = json.loads(sys.stdin.read())\n"
        "driver = load_driver('azure', **args['params'])\n"
    )
    payload = json.dumps({"params": backend.params, **args})
    done = subprocess.run(
        [sys.executable, "-c", prelude + script],
        input=payload, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


# -- the block-id scheme and sizes ------------------------------------------------------------


def test_block_ids_have_one_length() -> None:
    """Tokens and the numbered sessions of older versions: one length, both parsed as ours."""
    sessions = [new_session() for _ in range(3)] + ["000001", "999999"]
    ids = {Block(i, s, 1).id for i in (0, 7, 49_999, 999_999) for s in sessions}
    assert {len(i) for i in ids} == {BLOCK_ID_LENGTH}
    assert all(parse_block(BlobBlock(i)) is not None for i in ids)
    assert parse_block(BlobBlock("000001ABCDEF")) is None  # not a session of ours
    assert len({new_session() for _ in range(100)}) == 100


def test_block_sizes_fit_several_hundred_gib() -> None:
    chunk = 4 * MiB
    total = sum(block_size(i, chunk) for i in range(MAX_BLOCKS))
    assert total >= 1024 * 2**30  # a TiB with the defaults
    assert block_size(0, chunk) == chunk and block_size(TIER_BLOCKS, chunk) == 2 * chunk
    assert max(block_size(i, chunk) for i in range(MAX_BLOCKS)) == 64 * MiB
    assert block_size(MAX_BLOCKS - 1, 1000 * MiB) == MAX_BLOCK_SIZE


def _block(index: int, session: int | str, size: int = 1) -> BlobBlock:
    """A block of a token session, or (an int) a numbered session of an older version."""
    name = f"{session:06d}" if isinstance(session, int) else session
    b = BlobBlock(Block(index, name, size).id)
    b.size = size
    return b


def _chain(committed: list[BlobBlock], staged: list[BlobBlock],
           fences: dict[int, Fence] | None = None) -> list[tuple[int, str, int]]:
    return [(b.index, b.session, b.size) for b in write_chain(committed, staged, fences or {})]


def test_write_chain_follows_the_fenced_winners() -> None:
    """Rivals from one offset each staged whole blocks; the fences say whose were accepted."""
    first = [_block(0, "aaaaaa", 4), _block(1, "aaaaaa", 2)]  # 6 bytes, closed at part 2
    mine = [_block(2, "bbbbbb", 4), _block(3, "bbbbbb", 4), _block(4, "bbbbbb", 1)]
    theirs = [_block(2, "cccccc", 4), _block(3, "cccccc", 4), _block(4, "cccccc", 3)]
    fences = {0: Fence("aaaaaa", 2), 6: Fence("cccccc", 5)}
    chain = _chain([], [*first, *mine, *theirs], fences)
    assert chain == [(0, "aaaaaa", 4), (1, "aaaaaa", 2), (2, "cccccc", 4), (3, "cccccc", 4),
                     (4, "cccccc", 3)]
    # Before either rival closed, the write ends where its last fenced advance did.
    assert [b[0] for b in _chain([], [*first, *mine, *theirs], {0: fences[0]})] == [0, 1]
    # A fence whose winner's tail is not staged yet: the chain ends before it.
    assert len(_chain([], [*first, *theirs[:2]], fences)) == 4


def test_write_chain_continues_committed_blocks() -> None:
    """Committed blocks (fences cleared at commit) are continued, unless a fresh write from 0
    claimed the write after them."""
    committed = [_block(0, "aaaaaa", 3), _block(1, "aaaaaa", 3)]
    append = [_block(2, "bbbbbb", 5)]
    assert len(_chain(committed, append, {6: Fence("bbbbbb", 3)})) == 3
    assert len(_chain(committed, append)) == 2  # an unfenced session is never resumed
    fresh = [_block(0, "dddddd", 7)]
    assert _chain(committed, fresh, {0: Fence("dddddd", 1)}) == [(0, "dddddd", 7)]
    # A commit that died before clearing its fences: they name its own sessions.
    assert len(_chain(committed, append, {0: Fence("aaaaaa", 2), 6: Fence("bbbbbb", 3)})) == 3


def test_write_chain_of_numbered_sessions_of_older_versions() -> None:
    # Session 1 staged 0, 1 and 3 (2 failed); session 2 restaged 2; 3 of session 1 is an orphan.
    blocks = [_block(0, 1), _block(1, 1), _block(3, 1), _block(2, 2, 5)]
    assert _chain([], blocks) == [(0, "000001", 1), (1, "000001", 1), (2, "000002", 5)]
    # Foreign ids are ignored; a newer session wins at one index.
    assert _chain([], [_block(0, 1), _block(0, 3, 9), BlobBlock("foreign")])[0][2] == 9
    # A token session continues a numbered write after a fence; numbered blocks never
    # continue a token session's.
    after = [_block(1, "tttttt", 4), _block(2, 3)]
    assert _chain([], [_block(0, 1), *after], {1: Fence("tttttt", 2)}) == [
        (0, "000001", 1), (1, "tttttt", 4)]


# -- against Azurite ------------------------------------------------------------------------


def test_staged_and_committed_ids_are_uniform(
    driver: StorageDriver, backend_azure: Backend, container: ContainerClient
) -> None:
    name = blob_name(backend_azure, "/u/data")
    w = driver.writer("/u/data")
    w.write(os.urandom(3 * CHUNK + 100))
    w.close()
    committed, uncommitted = block_lists(container, name)
    assert committed == [] and len(uncommitted) == 4
    w = driver.writer("/u/data", append=True)
    w.write(os.urandom(CHUNK))
    w.commit()
    committed, uncommitted = block_lists(container, name)
    assert len(committed) == 5 and uncommitted == []
    assert {len(i) for i in committed} == {BLOCK_ID_LENGTH}


def test_wire_block_ids_have_one_length(
    driver: StorageDriver, backend_azure: Backend, azurite: Azurite
) -> None:
    """Ask the REST API itself (not the SDK, which decodes ids) for the ids' lengths."""
    w = driver.writer("/w")
    w.write(os.urandom(2 * CHUNK + 1))
    w.close()
    name = blob_name(backend_azure, "/w")
    with ContainerClient.from_connection_string(azurite.connection_string, CONTAINER) as c:
        sas = generate_blob_sas(ACCOUNT, CONTAINER, name, account_key=ACCOUNT_KEY,
                                permission=BlobSasPermissions(read=True),
                                expiry=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))
        url = f"{c.get_blob_client(name).url}?comp=blocklist&blocklisttype=all&{sas}"
    with urllib.request.urlopen(url, timeout=30) as response:
        wire = re.findall(r"<Name>([^<]*)</Name>", response.read().decode())
    assert len(wire) == 3 and {len(i) for i in wire} == {16}
    w = driver.writer("/w", append=True)
    w.cancel()


def test_resume_in_another_process(driver: StorageDriver, backend_azure: Backend) -> None:
    first, second, third = os.urandom(CHUNK + 17), os.urandom(2 * CHUNK), os.urandom(999)
    run_child(
        backend_azure,
        "w = driver.writer('/x/data'); w.write(bytes.fromhex(args['data'])); w.close()\n"
        "assert w.size == len(args['data']) // 2\n",
        data=first.hex(),
    )
    w = driver.writer("/x/data", append=True)
    assert w.size == len(first)
    w.write(second)
    w.close()
    run_child(
        backend_azure,
        "w = driver.writer('/x/data', append=True)\n"
        "assert w.size == args['size'], w.size\n"
        "w.write(bytes.fromhex(args['data'])); w.commit()\n",
        data=third.hex(),
        size=len(first) + len(second),
    )
    assert driver.get_content("/x/data") == first + second + third


def test_append_to_committed_reuses_its_blocks(
    driver: StorageDriver, backend_azure: Backend, container: ContainerClient
) -> None:
    a, b = os.urandom(2 * CHUNK), os.urandom(CHUNK // 3)
    w = driver.writer("/c")
    w.write(a)
    w.commit()
    before, _ = block_lists(container, blob_name(backend_azure, "/c"))
    w = driver.writer("/c", append=True)
    assert w.size == len(a)
    w.write(b)
    w.close()
    assert driver.get_content("/c") == a  # still the committed content until commit
    w = driver.writer("/c", append=True)
    assert w.size == len(a) + len(b)
    w.commit()
    after, _ = block_lists(container, blob_name(backend_azure, "/c"))
    assert after[: len(before)] == before and len(after) == len(before) + 1
    assert driver.get_content("/c") == a + b


def test_append_to_single_shot_content(driver: StorageDriver) -> None:
    """put_content's one-request upload has no blocks: it is restaged, then continued."""
    a, b = os.urandom(CHUNK + 5), os.urandom(10)
    driver.put_content("/p", a)
    w = driver.writer("/p", append=True)
    assert isinstance(w, PartWriter) and w.size == len(a)
    w.write(b)
    w.commit()
    assert driver.get_content("/p") == a + b


def test_resume_committed_empty_blob(driver: StorageDriver) -> None:
    driver.put_content("/e", b"")
    w = driver.writer("/e", append=True)
    assert w.size == 0
    w.write(b"abc")
    w.commit()
    assert driver.get_content("/e") == b"abc"


def test_fresh_writer_discards_stale_blocks(driver: StorageDriver) -> None:
    w = driver.writer("/s")
    w.write(os.urandom(3 * CHUNK))
    w.close()
    w = driver.writer("/s")
    w.write(b"short")
    w.close()
    w = driver.writer("/s", append=True)
    assert w.size == 5
    w.commit()
    assert driver.get_content("/s") == b"short"


def test_fresh_writer_over_committed_blocks(driver: StorageDriver) -> None:
    """Committed blocks of ours are not resumed once a fresh write has staged from index 0."""
    driver.put_content("/fc", b"")
    w = driver.writer("/fc")
    w.write(os.urandom(3 * CHUNK))
    w.commit()
    w = driver.writer("/fc")
    w.write(b"new")
    w.close()
    w = driver.writer("/fc", append=True)
    assert w.size == 3
    w.commit()
    assert driver.get_content("/fc") == b"new"


def test_tail_survives_close_as_a_short_block(
    driver: StorageDriver, backend_azure: Backend, container: ContainerClient
) -> None:
    """close() stages the tail; the next session continues after it.

    The only side object is the one-writer fence of the advance from offset 0 (DESIGN §4),
    and commit removes it.
    """
    w = driver.writer("/t")
    w.write(b"abc")
    w.close()
    _, uncommitted = block_lists(container, blob_name(backend_azure, "/t"))
    assert len(uncommitted) == 1 and uncommitted[0].startswith("000000")
    first = uncommitted[0][6:]
    side = [n for n in container.list_blob_names(name_starts_with=blob_name(backend_azure, "/"))
            if "~" in n]  # fmt: skip
    assert side == [blob_name(backend_azure, "/t~from~0")]
    w = driver.writer("/t", append=True)
    w.write(b"def")
    w.commit()
    assert [n for n in container.list_blob_names(name_starts_with=blob_name(backend_azure, "/"))
            if "~" in n] == []  # fmt: skip
    committed, _ = block_lists(container, blob_name(backend_azure, "/t"))
    assert committed[0] == Block(0, first, 3).id and committed[1].startswith("000001")
    assert committed[1][6:] != first  # each session its own token
    assert driver.get_content("/t") == b"abcdef"


class _Service(BlobServiceClient):
    """A real service client that remembers being closed."""

    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


class _Container(ContainerClient):
    """A real container client that remembers being closed."""

    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


@pytest.mark.parametrize("kind", ["service", "container"])
def test_injected_client_is_used_and_not_closed(
    azurite: Azurite, backend_azure: Backend, kind: str
) -> None:
    params = AzureParams(**{**backend_azure.params, "chunksize": 64 * 1024})
    client: _Service | _Container
    if kind == "service":
        client = _Service.from_connection_string(azurite.connection_string)
    else:
        client = _Container.from_connection_string(azurite.connection_string, CONTAINER)
    d = AzureDriver(params, **{kind: client})
    assert d.bucket.container.url.startswith(azurite.endpoint)
    w = d.writer("/inj")
    w.write(os.urandom(64 * 1024 + 9))
    w.commit()
    assert d.stat("/inj").size == 64 * 1024 + 9
    assert d.redirect_url("/inj") is not None  # the account key signs either way
    d.delete("/inj")
    d.close()
    assert not client.closed
    client.close()
    owned = AzureDriver(params)
    owned.close()
    assert isinstance(owned.bucket.service, BlobServiceClient)


def test_orphan_block_after_gap_is_not_resumed(
    driver: StorageDriver, backend_azure: Backend, container: ContainerClient
) -> None:
    """A block staged past a failed one (parallel staging) must not join the write later.

    The blocks are an older version's numbered session, resumed unfenced.
    """
    blob = container.get_blob_client(blob_name(backend_azure, "/g"))
    blob.commit_block_list([])
    parts = [os.urandom(100) for _ in range(4)]
    for index in (0, 1, 3):  # session 1; index 2 "failed"
        blob.stage_block(Block(index, "000001", 100).id, parts[index])
    w = driver.writer("/g", append=True)
    assert w.size == 200
    w.write(b"x" * 100)  # becomes block 2 of a token session at close
    w.close()
    w = driver.writer("/g", append=True)
    assert w.size == 300, "the orphan block 3 of session 1 was picked up"
    w.commit()
    assert driver.get_content("/g") == parts[0] + parts[1] + b"x" * 100


def test_parallel_staging_keeps_order(azurite: Azurite, backend_azure: Backend) -> None:
    params = {**backend_azure.params, "chunksize": 64 * 1024, "maxconcurrency": 8}
    d = load_driver("azure", **params)
    data = os.urandom(64 * 1024 * 40 + 3)
    w = d.writer("/par")
    for start in range(0, len(data), 100_000):
        w.write(data[start : start + 100_000])
    w.commit()
    assert d.get_content("/par") == data
    with d.reader("/par", 64 * 1024 * 7 + 1) as r:
        assert r.read() == data[64 * 1024 * 7 + 1 :]
    d.close()


def test_cancel_removes_blob_and_staged_blocks(
    driver: StorageDriver, backend_azure: Backend, container: ContainerClient
) -> None:
    w = driver.writer("/k")
    w.write(os.urandom(2 * CHUNK))
    w.close()
    driver.writer("/k", append=True).cancel()
    names = [b.name for b in container.list_blobs(
        name_starts_with=blob_name(backend_azure, "/k"), include=["uncommittedblobs"]
    )]  # fmt: skip
    assert names == []
    with pytest.raises(PathNotFoundError):
        driver.writer("/k", append=True)


def test_unfinished_write_is_not_listed(driver: StorageDriver, container: ContainerClient,
                                        backend_azure: Backend) -> None:  # fmt: skip
    """Blobs with only staged blocks (unfinished writes) are invisible; delete removes them."""
    container.get_blob_client(blob_name(backend_azure, "/d/staged")).stage_block(
        Block(0, "000001", 3).id, b"abc"
    )
    driver.put_content("/d/file", b"1")
    assert driver.list("/d") == ["/d/file"]
    assert [i.path for i in driver.walk("/")] == ["/d", "/d/file"]
    with pytest.raises(PathNotFoundError):
        driver.stat("/d/staged")
    driver.delete("/d")
    leftovers = container.list_blobs(
        name_starts_with=blob_name(backend_azure, "/d"), include=["uncommittedblobs"]
    )
    assert [b.name for b in leftovers] == []


def test_staged_blocks_survive_an_azurite_restart(tmp_path: Path) -> None:
    """Uncommitted blocks are in Azurite's --location: a restarted server still resumes them."""
    first = Azurite(tmp_path / "loc")
    try:
        first.create_container()
        params = first.params(rootdirectory=f"r-{uuid.uuid4().hex[:8]}", chunksize=64 * 1024)
        d = load_driver("azure", **params)
        a = os.urandom(3 * 64 * 1024 + 11)
        w = d.writer("/up/data")
        w.write(a)
        w.close()
        d.close()
    finally:
        first.stop()
    second = Azurite(tmp_path / "loc")
    try:
        params["endpoint"] = second.endpoint  # a new port, the same data
        d = load_driver("azure", **params)
        w = d.writer("/up/data", append=True)
        assert w.size == len(a)
        w.write(b"tail")
        w.commit()
        assert d.get_content("/up/data") == a + b"tail"
        d.close()
    finally:
        second.stop()


def test_continue_a_distribution_append_blob(
    driver: StorageDriver, backend_azure: Backend, container: ContainerClient
) -> None:
    """Distribution's azure driver leaves uploads as append blobs; we finish them in place."""
    blob = container.get_blob_client(blob_name(backend_azure, "/_uploads/u1/data"))
    blob.create_append_blob()
    first = os.urandom(5000)
    blob.append_block(first)
    w = driver.writer("/_uploads/u1/data", append=True)
    assert w.size == len(first)
    more = os.urandom(5 * 2**20 + 3)  # more than one 4 MiB append
    w.write(more)
    w.close()
    run_child(
        backend_azure,
        "w = driver.writer('/_uploads/u1/data', append=True)\n"
        "assert w.size == args['size'], w.size\n"
        "w.write(b'end'); w.commit()\n",
        size=len(first) + len(more),
    )
    assert driver.get_content("/_uploads/u1/data") == first + more + b"end"
    w = driver.writer("/_uploads/u1/data")  # a fresh write replaces it with a block blob
    w.write(b"fresh")
    w.commit()
    assert driver.get_content("/_uploads/u1/data") == b"fresh"
    blob.create_append_blob()
    driver.writer("/_uploads/u1/data", append=True).cancel()
    with pytest.raises(PathNotFoundError):
        driver.stat("/_uploads/u1/data")


def test_block_limit_is_a_clear_error(
    driver: StorageDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert AzureBucket.max_parts == MAX_BLOCKS
    monkeypatch.setattr(AzureBucket, "max_parts", 3)
    w = driver.writer("/big")
    with pytest.raises(StorageDriverError, match=r"every part number the store allows \(3\)"):
        w.write(os.urandom(4 * CHUNK + 1))  # part 4 is sent once more data shows it is full
    w.cancel()


def test_failed_parallel_stage_resumes_at_a_clean_prefix(tmp_path: Path) -> None:
    """Azurite stops mid-write: the writer fails, and a resume continues at its last close.

    Blocks the failed session staged after it are not resumed: no fence names that session,
    as for a rival's (S3 likewise keeps only the parts its saved state lists).
    """
    server = Azurite(tmp_path / "loc")
    data = os.urandom(64 * 1024 * 64)
    closed = 64 * 1024 * 8 + 5
    try:
        server.create_container()
        params = server.params(rootdirectory="f", chunksize=64 * 1024, maxconcurrency=4,
                               maxretries=0)  # fmt: skip
        d = load_driver("azure", **params)
        with d.writer("/up") as w:
            w.write(data[:closed])
        w = d.writer("/up", append=True)
        w.write(data[closed : len(data) // 2])
        server.stop()
        with pytest.raises(StorageDriverError):
            w.write(data[len(data) // 2 :])
            w.close()
        with pytest.raises(StorageDriverError, match="earlier part failed|Connection"):
            w.write(b"more")
            w.close()
    finally:
        server.stop()
    server = Azurite(tmp_path / "loc")
    try:
        d = load_driver("azure", **{**params, "endpoint": server.endpoint})
        w = d.writer("/up", append=True)
        assert w.size == closed
        w.write(data[w.size :])
        w.commit()
        assert d.get_content("/up") == data
    finally:
        server.stop()


def test_resume_staged_only_blob(
    driver: StorageDriver, backend_azure: Backend, container: ContainerClient
) -> None:
    """Blocks staged with nothing committed yet (no empty blob) are still resumed.

    An older version's numbered session, unfenced (a write from before the fences).
    """
    blob = container.get_blob_client(blob_name(backend_azure, "/so"))
    blob.stage_block(Block(0, "000001", 3).id, b"abc")
    w = driver.writer("/so", append=True)
    assert w.size == 3
    w.write(b"def")
    w.commit()
    assert driver.get_content("/so") == b"abcdef"


def test_commit_clears_more_fences_than_one_batch(
    driver: StorageDriver, backend_azure: Backend, container: ContainerClient
) -> None:
    """A write with more fences than a Blob Batch deletes (256): commit clears every one.

    The write's own fence and enough more (stale ones past its end, as a write closed that
    often leaves) to need two batches; on main the one batch of all of them was refused.
    """
    assert isinstance(driver, AzureDriver)
    bucket, key = driver.bucket, blob_name(backend_azure, "/many")
    with driver.writer("/many") as w:
        w.write(b"abc")
    extra = [fence.fence_key(key, 10**9 + i) for i in range(AzureBucket.delete_batch + 4)]
    with ThreadPoolExecutor(8) as pool:
        stale = fence.encode_part(new_session(), 1, b"")
        assert all(pool.map(lambda k: bucket.put_if_absent(k, stale), extra))
    prefix = key + fence.FENCE_INFIX
    assert len(list(container.list_blob_names(name_starts_with=prefix))) == len(extra) + 1
    w = driver.writer("/many", append=True)
    assert w.size == 3
    w.commit()
    assert driver.get_content("/many") == b"abc"
    assert list(container.list_blob_names(name_starts_with=prefix)) == []


def test_winner_that_died_after_its_fence(
    driver: StorageDriver, backend_azure: Backend, container: ContainerClient
) -> None:
    """A winner killed between its fence and its tail: the loser stages the fenced tail under
    the winner's id, so the next resume reports the winner's advance; one killed with only
    its full blocks staged is resumed up to them (its tail never counted)."""
    assert isinstance(driver, AzureDriver)
    bucket = driver.bucket
    for case, full in (("tail", b""), ("full", os.urandom(CHUNK))):
        path = f"/died-{case}"
        key = blob_name(backend_azure, path)
        with driver.writer(path) as w:
            w.write(b"abc")
        winner = new_session()
        if full:
            container.get_blob_client(key).stage_block(Block(1, winner, CHUNK).id, full)
        number = 3 if full else 2  # the tail's part number: after the full block, if any
        assert fence.claim(bucket, key, 3, fence.encode_part(winner, number, b"def"))
        loser = driver.writer(path, append=True)
        assert loser.size == 3 + len(full)
        if not full:
            loser.write(b"xyz")
            with pytest.raises(WriteConflictError):
                loser.close()
        w = driver.writer(path, append=True)
        assert w.size == (3 + len(full) if full else 6), case
        w.commit()
        assert driver.get_content(path) == (b"abc" + full if full else b"abcdef"), case


def test_fence_of_an_older_version_is_read(
    driver: StorageDriver, backend_azure: Backend, container: ContainerClient
) -> None:
    """Older versions' fences hold the numbered session ("1") in their content only, without
    metadata: a resume reads them and follows the session they name, not the newest."""
    assert isinstance(driver, AzureDriver)
    key = blob_name(backend_azure, "/old")
    blob = container.get_blob_client(key)
    blob.stage_block(Block(0, "000001", 3).id, b"abc")
    blob.stage_block(Block(0, "000002", 3).id, b"xyz")  # a newer session that lost
    driver.bucket.put(fence.fence_key(key, 0), fence.encode_part("1", 1, b"abc"))
    w = driver.writer("/old", append=True)
    assert w.size == 3
    w.write(b"def")
    w.commit()
    assert driver.get_content("/old") == b"abcdef"
