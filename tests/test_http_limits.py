"""Bounds enforced before authentication: header size, timeouts, connection cap, auth before body.

Raw sockets, because each probe is a client misbehaving in a way an HTTP library will not.
Time bounds are generous upper limits (a loaded machine is slow), never lower ones.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.server import Config
from layerstore_core.server.config import Htpasswd, Limits, PurgeConfig
from layerstore_core.server.threaded import ThreadedServer

#: How long a probe may wait for the server to act on a 1 s limit on a slow machine.
PATIENCE = 20.0


def config(**overrides: object) -> Config:
    values: dict[str, object] = {"driver": "inmemory", "driver_params": {}, "secret": "s",
                                 "purge": PurgeConfig(enabled=False)}
    values.update(overrides)
    return Config(**values)  # type: ignore[arg-type]


@pytest.fixture
def quick() -> Iterator[ThreadedServer]:
    """A server whose header, body and keep-alive timeouts are one second."""
    limits = Limits(header_timeout=1.0, body_timeout=1.0, keepalive_timeout=1.0,
                    max_header_bytes=8192)
    with ThreadedServer(config(limits=limits), InMemoryDriver()) as srv:
        yield srv


def connect(srv: ThreadedServer) -> socket.socket:
    host, port = srv.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=PATIENCE)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (a timeout here fails the test)."""
    out = bytearray()
    while chunk := sock.recv(65536):
        out += chunk
    return bytes(out)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def test_oversized_headers_get_431_and_close(quick: ThreadedServer) -> None:
    with connect(quick) as sock:
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        assert status_of(read_all(sock)) == 431


def test_oversized_header_streamed_is_cut_off(quick: ThreadedServer) -> None:
    """A header that never ends is refused once past the limit, not buffered to the end."""
    with connect(quick) as sock:
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        with pytest.raises(OSError):  # the server closes: EPIPE / ECONNRESET
            while sent < 64 * 2**20:
                sock.sendall(b"a" * 65536)
                sent += 65536
        assert sent < 8 * 2**20


def test_oversized_url_gets_414(quick: ThreadedServer) -> None:
    with connect(quick) as sock:
        sock.sendall(b"GET /v2/" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(read_all(sock)) == 414


def test_headers_under_the_limit_pass(quick: ThreadedServer) -> None:
    with connect(quick) as sock:
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Ok: " + b"a" * 4000 +
                     b"\r\nConnection: close\r\n\r\n")
        assert status_of(read_all(sock)) == 200


def test_slow_headers_time_out(quick: ThreadedServer) -> None:
    """One byte every 0.2 s keeps a connection busy only until the header timeout."""
    start = time.monotonic()
    with connect(quick) as sock:
        request = b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
        response = b""
        try:
            for byte in request:
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
                assert time.monotonic() - start < PATIENCE, "header timeout never fired"
        except OSError:
            pass
        sock.settimeout(PATIENCE)
        try:
            response = read_all(sock)
        except ConnectionResetError:
            pass
        assert response == b"" or status_of(response) == 408


def test_silent_connection_is_closed(quick: ThreadedServer) -> None:
    with connect(quick) as sock:
        response = read_all(sock)  # the server must close on its own within PATIENCE
        assert response == b"" or status_of(response) == 408


def test_keepalive_connection_is_closed(quick: ThreadedServer) -> None:
    with connect(quick) as sock:
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(read_all(sock)) == 200  # then idle: closed after the keep-alive


def test_stalled_body_is_closed(quick: ThreadedServer) -> None:
    """A PATCH announcing 100 bytes that sends 10 is not held open."""
    with connect(quick) as sock:
        sock.sendall(b"POST /v2/a/blobs/uploads/?digest=sha256:" + b"0" * 64 +
                     b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        read_all(sock)


def test_connection_cap_refuses_with_503() -> None:
    limits = Limits(max_connections=3)
    with ThreadedServer(config(limits=limits), InMemoryDriver()) as srv:
        held = [connect(srv) for _ in range(3)]
        try:
            for sock in held:  # each is accepted and served
                sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
                assert status_of(sock.recv(65536)) == 200
            with connect(srv) as extra:
                assert status_of(read_all(extra)) == 503
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + PATIENCE
        while True:  # the slots free up once those close
            with connect(srv) as again:
                again.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if status_of(read_all(again)) == 200:
                    break
            assert time.monotonic() < deadline
            time.sleep(0.1)


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[ThreadedServer]:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{hashed}\n")
    cfg = config(htpasswd=Htpasswd("r", str(path)))
    with ThreadedServer(cfg, InMemoryDriver()) as srv:
        yield srv


def test_unauthenticated_body_is_not_read(guarded: ThreadedServer) -> None:
    """The 401 comes as soon as the headers are in, although 256 MiB are announced."""
    with connect(guarded) as sock:
        sock.sendall(b"PATCH /v2/a/blobs/uploads/x HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 268435456\r\n\r\n")
        response = read_all(sock)  # no body sent: today's drain would wait forever
        assert status_of(response) == 401
        assert b"connection: close" in response.lower()


def test_unauthenticated_chunked_body_is_cut_off(guarded: ThreadedServer) -> None:
    with connect(guarded) as sock:
        sock.sendall(b"PATCH /v2/a/blobs/uploads/x HTTP/1.1\r\nHost: x\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        response = bytearray()
        reader = threading.Thread(target=lambda: response.extend(read_all(sock)), daemon=True)
        reader.start()
        chunk = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)
        sent = 0
        with pytest.raises(OSError):  # the server closed without reading on
            while sent < 256 * 2**20:
                sock.sendall(chunk)
                sent += len(chunk)
        reader.join(PATIENCE)
        assert sent < 32 * 2**20
        assert status_of(bytes(response)) == 401


def test_authenticated_request_still_works(guarded: ThreadedServer) -> None:
    auth = base64.b64encode(b"alice:pw")
    with connect(guarded) as sock:
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + auth +
                     b"\r\nConnection: close\r\n\r\n")
        assert status_of(read_all(sock)) == 200
