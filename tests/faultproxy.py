"""A fault-injecting TCP proxy for tests: put it between a driver and its emulator.

Bytes pass through unchanged until a fault is armed; the next connection to carry
``after`` more bytes in the fault's direction then gets it: ``RESET`` (an RST mid-request,
``SO_LINGER`` 0), ``STALL`` (the connection goes silent for ``stall_s``, then closes),
``TRUNCATE`` (the response is cut after ``after`` bytes) or ``STATUS`` (the next request, on
a new or a kept-alive connection, is answered with a canned HTTP response, e.g. S3's
``503 SlowDown``, and the connection closed). Each fault fires once. It works below HTTP,
so it needs nothing from the emulator; tests/s3proxy.py is the HTTP-level counting proxy for
S3, whose ``before`` hook can answer requests without forwarding them.
"""

from __future__ import annotations

import dataclasses
import enum
import socket
import struct
import threading
import time
from types import TracebackType

_BUF = 64 * 1024


class Kind(enum.Enum):
    RESET = "reset"
    STALL = "stall"
    TRUNCATE = "truncate"
    STATUS = "status"


@dataclasses.dataclass
class Fault:
    """One armed fault: ``after`` bytes (request side, or response side for TRUNCATE)."""

    kind: Kind
    after: int = 0
    stall_s: float = 0.0
    response: bytes = b""


class FaultProxy:
    """``with FaultProxy("127.0.0.1", port) as proxy: proxy.arm(Fault(Kind.RESET, 100_000))``."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._lock = threading.Lock()
        self._armed: Fault | None = None
        self._left = 0
        self.fired: list[Kind] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def arm(self, fault: Fault) -> None:
        with self._lock:
            self._armed, self._left = fault, fault.after

    @property
    def armed(self) -> bool:
        with self._lock:
            return self._armed is not None

    def _take(self, upstream: bool, n: int) -> tuple[Fault | None, int]:
        """If the armed fault fires within these ``n`` bytes: (fault, bytes to pass first)."""
        with self._lock:
            fault = self._armed
            if fault is None or ((fault.kind is Kind.TRUNCATE) != upstream):
                return None, n
            if self._left >= n:
                self._left -= n
                return None, n
            self._armed = None
            self.fired.append(fault.kind)
            return fault, self._left

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(client,), daemon=True).start()

    def _connection(self, client: socket.socket) -> None:
        with self._lock:
            canned = self._armed if self._armed and self._armed.kind is Kind.STATUS else None
            if canned is not None:
                self._armed = None
                self.fired.append(Kind.STATUS)
        if canned is not None:
            _answer_canned(client, canned.response)
            return
        try:
            upstream = socket.create_connection(self._upstream, timeout=30)
        except OSError:
            _reset(client)
            return
        upstream.settimeout(None)
        ends = threading.Semaphore(0)
        threading.Thread(target=self._pump, args=(client, upstream, False, ends),
                         daemon=True).start()
        self._pump(upstream, client, True, ends)
        ends.acquire()  # the other direction is done too
        client.close()
        upstream.close()

    def _pump(self, src: socket.socket, dst: socket.socket, from_upstream: bool,
              ends: threading.Semaphore) -> None:
        """Copy src → dst, applying a fault that fires in this direction.

        A clean end (EOF) is passed on as a half close, so the other direction finishes; a
        fault or an error drops both sockets with an RST.
        """
        try:
            while True:
                data = src.recv(_BUF)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                fault, first = self._take(from_upstream, len(data))
                if fault is None:
                    dst.sendall(data)
                    continue
                if fault.kind is Kind.STATUS:  # the next request, on a kept-alive connection
                    _reset(dst)
                    src.sendall(fault.response)
                    src.shutdown(socket.SHUT_WR)
                    while src.recv(_BUF):  # until the client closes: no RST over the answer
                        pass
                    return
                dst.sendall(data[:first])
                if fault.kind is Kind.STALL:
                    time.sleep(fault.stall_s)
                break
        except OSError:
            pass
        finally:
            ends.release()
        _reset(src)
        _reset(dst)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stopping.set()
        self._listener.close()
        self._thread.join(10)


def _reset(sock: socket.socket) -> None:
    """Drop the connection with an RST (linger 0); the shutdown also wakes the other
    direction's thread blocked in ``recv`` (a bare close would not). Closed by its owner."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _answer_canned(client: socket.socket, response: bytes) -> None:
    """Read the request head (what a server reads before answering), answer, close."""
    client.settimeout(30)
    seen = b""
    deadline = time.monotonic() + 30
    try:
        while b"\r\n\r\n" not in seen and time.monotonic() < deadline:
            data = client.recv(_BUF)
            if not data:
                break
            seen += data
        client.sendall(response)
        client.shutdown(socket.SHUT_WR)
        client.recv(_BUF)  # until the client closes (or the timeout): no RST over the answer
    except OSError:
        pass
    client.close()


def http_response(status: int, reason: str, body: bytes, content_type: str) -> bytes:
    """A complete HTTP/1.1 response that closes the connection."""
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body
