"""One writer per upload over HTTP: the same chunk sent at once to two servers on one storage.

Two ``layerstore serve`` processes share a backend; two threads released by a barrier PATCH the
same ``Content-Range`` (with different bytes, so the winner is known) of one upload, one to
each server, :data:`RACES` times (the first race is the upload's first chunk). Each time exactly
one is accepted (202) and the other refused (416, or 400 BLOB_UPLOAD_INVALID); both servers
then report the winner's offset, and at the end the upload commits (201) to a blob that hashes
to its digest — the winners' bytes in order. Bounded in time; no timing assertions.
``azure-whole-parts`` sends chunks of two whole blocks and more, so each rival stages whole
blocks before either closes: the loser's must never replace the winner's (a wrong blob).
"""

from __future__ import annotations

import hashlib
import random
import threading
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from layerstore_core.registry import paths as p
from layerstore_core.testing import Backend
from tests.backends._servers import free_port
from tests.images import RegistryProcess, write_config
from tests.locations import path_of

RACES = 5
TIMEOUT = httpx.Timeout(120.0)
BARRIER_TIMEOUT = 120.0
REFUSED = (416, 400)


def _serve(backend: Backend, workdir: Path, name: str) -> tuple[RegistryProcess, str]:
    port = free_port()
    config = write_config(workdir / f"{name}.yml", backend.driver, backend.params, port)
    proc = RegistryProcess.layerstore(config, port, workdir / f"{name}.log")
    proc.wait_ready(timeout=120)
    return proc, f"http://127.0.0.1:{port}"


def _chunk_headers(offset: int, body: bytes) -> dict[str, str]:
    return {"Content-Range": f"{offset}-{offset + len(body) - 1}",
            "Content-Type": "application/octet-stream"}


def _patch(url: str, location: str, offset: int, body: bytes) -> httpx.Response:
    """One PATCH of ``body`` at ``offset``."""
    return httpx.patch(url + location, content=body, headers=_chunk_headers(offset, body),
                       timeout=TIMEOUT)


def _put(url: str, location: str, data: bytes) -> tuple[httpx.Response, str]:
    """The committing PUT of an upload that holds ``data``; its answer and the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return httpx.put(f"{url}{location}&digest={quote(digest, safe='')}", timeout=TIMEOUT), digest


def _started(url: str, name: str, first: bytes = b"") -> str:
    """A new upload in repository ``name`` holding ``first`` (one PATCH, if any); its Location."""
    r = httpx.post(f"{url}/v2/{name}/blobs/uploads/", timeout=TIMEOUT)
    assert r.status_code == 202, r.text
    location = path_of(r.headers["Location"])
    if not first:
        return location
    r = _patch(url, location, 0, first)
    assert r.status_code == 202, r.text
    return path_of(r.headers["Location"])


def _race(urls: list[str], location: str, offset: int,
          bodies: list[bytes]) -> list[httpx.Response]:
    """PATCH ``bodies[i]`` at ``offset`` to ``urls[i]``, both threads released at once."""
    barrier = threading.Barrier(len(urls), timeout=BARRIER_TIMEOUT)
    answers: list[httpx.Response | BaseException] = [RuntimeError("no answer")] * len(urls)

    def send(i: int) -> None:
        with httpx.Client(timeout=TIMEOUT) as client:
            request = client.build_request("PATCH", urls[i] + location, content=bodies[i],
                                           headers=_chunk_headers(offset, bodies[i]))
            barrier.wait()
            try:
                answers[i] = client.send(request)
            except BaseException as exc:  # reported below, with the other answer
                answers[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BARRIER_TIMEOUT * 2)
    for answer in answers:
        if isinstance(answer, BaseException):
            raise AssertionError(f"a racing PATCH failed: {answer!r}")
    return [a for a in answers if isinstance(a, httpx.Response)]


def _one_wins(urls: list[str], location: str, offset: int,
              bodies: list[bytes]) -> tuple[bytes, str]:
    """Race ``bodies`` (see :func:`_race`): exactly one accepted, the other refused.

    The winner's body and the Location it answered.
    """
    answers = _race(urls, location, offset, bodies)
    codes = [a.status_code for a in answers]
    assert codes.count(202) == 1, (codes, [a.text for a in answers])
    winner = codes.index(202)
    loser = answers[1 - winner]
    assert loser.status_code in REFUSED, (codes, loser.text)
    if loser.status_code == 400:
        assert loser.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID", loser.text
    return bodies[winner], path_of(answers[winner].headers["Location"])


def _offset(url: str, location: str) -> int:
    r = httpx.get(url + location, timeout=TIMEOUT)
    assert r.status_code == 204, r.text
    last = int(r.headers["Range"].split("-")[1])
    return 0 if r.headers["Range"] == "0-0" else last + 1


#: Chunks per race: small ones (only a tail each) and, on Azure, chunks of two whole blocks
#: and more, so that each rival stages whole blocks before either closes (DESIGN §4).
CASES = {
    "filesystem": ("filesystem", False),
    "s3": ("s3", False),
    "azure": ("azure", False),
    "azure-whole-parts": ("azure", True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_chunk_to_two_servers_one_wins(
    case: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    backend_id, whole_parts = CASES[case]
    backend: Backend = request.getfixturevalue(f"backend_{backend_id}")
    rng = random.Random(case)
    chunk = 2 * int(backend.params["chunksize"]) + 1000 if whole_parts else 32 * 1024
    servers = [_serve(backend, tmp_path, name) for name in ("a", "b")]
    urls = [url for _, url in servers]
    try:
        location = _started(urls[0], "race/one")
        expected = b""
        for race in range(RACES):
            size = chunk + race
            bodies = [rng.randbytes(size) for _ in urls]
            won, location = _one_wins(urls, location, len(expected), bodies)
            expected += won
            for url in urls:
                assert _offset(url, location) == len(expected), (race, url)
        r, digest = _put(urls[1], location, expected)
        assert r.status_code == 201, r.text
        got = httpx.get(f"{urls[0]}/v2/race/one/blobs/{digest}", follow_redirects=True,
                        timeout=TIMEOUT)
        assert got.status_code == 200 and got.content == expected
    finally:
        for proc, _ in servers:
            proc.stop()


def test_first_chunks_of_an_upload_without_data_one_wins(
    backend_filesystem: Backend, tmp_path: Path
) -> None:
    """An upload started without its empty data write (Distribution's POST in a mixed fleet,
    or one from before ``start_data``): rivals' first chunks, one per server, one accepted.

    The data file is removed after the POST; both PATCHes then find nothing to continue, and
    the filesystem's fresh write creates it with ``O_EXCL``, so the later one gets 416 instead
    of truncating the first's chunk. :data:`RACES` uploads, each committed to the winner's bytes.
    """
    rng = random.Random("first-chunk")
    driver = backend_filesystem.make()
    servers = [_serve(backend_filesystem, tmp_path, name) for name in ("a", "b")]
    urls = [url for _, url in servers]
    try:
        for race in range(RACES):
            location = _started(urls[0], "race/one")
            upload_id = location.split("?")[0].rsplit("/", 1)[1]
            driver.delete(p.path_for(p.UploadDataPath("race/one", upload_id)))
            bodies = [rng.randbytes(32 * 1024 + race) for _ in urls]
            expected, location = _one_wins(urls, location, 0, bodies)
            r, digest = _put(urls[1], location, expected)
            assert r.status_code == 201, (race, r.text)
            got = httpx.get(f"{urls[0]}/v2/race/one/blobs/{digest}", timeout=TIMEOUT)
            assert got.status_code == 200 and got.content == expected, race
    finally:
        for proc, _ in servers:
            proc.stop()


#: Part size of the GCS test backends (``tests/backends/gcs.py``): whole parts in a PATCH.
GCS_PART = 2**20


@pytest.mark.parametrize("backend_id", ["gcs_fake"], ids=["gcs-whole-parts"])
def test_rival_whole_parts_to_two_servers_one_wins(
    backend_id: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Rival PATCHes that each carry whole parts (two parts and a tail, different bytes) of an
    upload that already holds a part, one per server: exactly one is accepted, and the PUT
    commits the winner's bytes — the loser's parts never replace the winner's in the blob.

    :data:`RACES` uploads. fake-gcs-server only: gcp-storage-emulator ignores preconditions.
    """
    backend: Backend = request.getfixturevalue(f"backend_{backend_id}")
    rng = random.Random(backend_id)
    servers = [_serve(backend, tmp_path, name) for name in ("a", "b")]
    urls = [url for _, url in servers]
    try:
        for race in range(RACES):
            expected = rng.randbytes(GCS_PART + 7)
            location = _started(urls[0], "race/parts", expected)
            bodies = [rng.randbytes(2 * GCS_PART + 5) for _ in urls]
            won, location = _one_wins(urls, location, len(expected), bodies)
            expected += won
            for url in urls:
                assert _offset(url, location) == len(expected), (race, url)
            r, digest = _put(urls[1], location, expected)
            assert r.status_code == 201, (race, r.status_code, r.text)
            got = httpx.get(f"{urls[0]}/v2/race/parts/blobs/{digest}", follow_redirects=True,
                            timeout=TIMEOUT)
            assert got.status_code == 200, (race, got.status_code)
            assert hashlib.sha256(got.content).hexdigest() == digest.split(":")[1], race
    finally:
        for proc, _ in servers:
            proc.stop()
