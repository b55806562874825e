"""A small HTTP proxy in front of an S3 endpoint (moto) that names and counts each S3 operation.

Clients point their endpoint at :attr:`S3Proxy.url`; every request is forwarded unchanged
(``Host`` included, so SigV4 signatures stay as signed) and its operation is classified from
method, path and query (:func:`s3_operation`). Bodies stream through in both directions.
:meth:`S3Proxy.before` is the seam for a later fault-injecting proxy: it may return a
``(status, body)`` to answer instead of forwarding.

Path-style addressing only (``/bucket/key``), which is what custom endpoints use.
"""

from __future__ import annotations

import collections
import http.client
import http.server
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType

_CHUNK = 1 << 20
#: Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded.
#: ``Expect`` too: the proxy answers ``100 Continue`` itself.
_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer",
                  "transfer-encoding", "upgrade", "expect"})
#: Operations that change the bucket (for "how many writes did that make").
WRITES = frozenset({
    "PutObject", "CopyObject", "UploadPart", "UploadPartCopy", "CreateMultipartUpload",
    "CompleteMultipartUpload", "AbortMultipartUpload", "DeleteObject", "DeleteObjects",
    "CreateBucket", "DeleteBucket",
})


def s3_operation(method: str, path: str, query: Mapping[str, object],
                 headers: Mapping[str, str]) -> str:
    """The S3 API operation a path-style request is (``GetObject (ranged)`` for a ranged GET)."""
    key = path.lstrip("/").partition("/")[2]
    copy = "x-amz-copy-source" in headers
    if not key:  # bucket-level
        if method == "GET":
            if "uploads" in query:
                return "ListMultipartUploads"
            if "location" in query:
                return "GetBucketLocation"
            return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        return {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(
            method, f"{method} bucket")
    if method == "GET":
        if "uploadId" in query:
            return "ListParts"
        return "GetObject (ranged)" if "range" in headers else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "PUT":
        if "uploadId" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        return "CopyObject" if copy else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    return f"{method} object"


class S3Proxy:
    """``with S3Proxy("http://127.0.0.1:5000") as proxy: ... proxy.counts()``."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        assert parsed.scheme == "http" and parsed.hostname, "an http:// upstream is required"
        self._upstream = (parsed.hostname, parsed.port or 80)
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        #: When set, called with ``(operation, "METHOD /path?query")`` for every request
        #: before it is forwarded (``bench/s3_requests.py --trace`` lists them in order).
        self.tracer: Callable[[str, str], None] | None = None
        self._server = http.server.ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://{host}:{self._server.server_address[1]}"

    # -- counting -------------------------------------------------------------------------

    def record(self, operation: str) -> None:
        with self._lock:
            self._counts[operation] += 1

    def counts(self) -> dict[str, int]:
        """Requests seen so far, by operation."""
        with self._lock:
            return dict(self._counts)

    def reset(self) -> dict[str, int]:
        """Return the counts and start again from zero."""
        with self._lock:
            seen, self._counts = dict(self._counts), collections.Counter()
            return seen

    @contextmanager
    def counting(self) -> Iterator[collections.Counter[str]]:
        """Count only the requests made inside the block (filled in when it ends)."""
        self.reset()
        seen: collections.Counter[str] = collections.Counter()
        try:
            yield seen
        finally:
            seen.update(self.reset())

    def before(self, operation: str, method: str, path: str) -> tuple[int, bytes] | None:
        """Hook run before forwarding; a subclass may answer instead (fault injection)."""
        return None

    # -- life cycle -----------------------------------------------------------------------

    def upstream_connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(*self._upstream, timeout=120)

    def start(self) -> S3Proxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def __enter__(self) -> S3Proxy:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _handler(proxy: S3Proxy) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
            pass

        def _forward(self) -> None:
            split = urllib.parse.urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            op = s3_operation(self.command, split.path,
                              urllib.parse.parse_qs(split.query, keep_blank_values=True), headers)
            proxy.record(op)
            if proxy.tracer is not None:
                proxy.tracer(op, f"{self.command} {self.path}")
            canned = proxy.before(op, self.command, self.path)
            if canned is not None:
                self._drain(headers)
                self._reply(canned[0], {"content-length": str(len(canned[1]))}, [canned[1]])
                return
            # A fresh upstream connection per request: a kept-alive one the server has closed
            # would fail a request whose streamed body cannot be sent again.
            conn = proxy.upstream_connection()
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP:
                    conn.putheader(name, value)
            chunked = "chunked" in headers.get("transfer-encoding", "")
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for piece in self._body(headers):
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                conn.send(b"0\r\n\r\n")
            resp = conn.getresponse()
            out = {k.lower(): v for k, v in resp.getheaders() if k.lower() not in _HOP}
            try:
                self._reply(resp.status, out, _stream(resp), head=self.command == "HEAD")
            finally:
                conn.close()

        def _body(self, headers: Mapping[str, str]) -> Iterator[bytes]:
            if "chunked" in headers.get("transfer-encoding", ""):
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline().strip():  # trailers
                            pass
                        return
                    yield self.rfile.read(size)
                    self.rfile.readline()
            left = int(headers.get("content-length", "0") or 0)
            while left > 0:
                piece = self.rfile.read(min(_CHUNK, left))
                if not piece:
                    return
                left -= len(piece)
                yield piece

        def _drain(self, headers: Mapping[str, str]) -> None:
            for _ in self._body(headers):
                pass

        def _reply(self, status: int, headers: Mapping[str, str],
                   body: Iterator[bytes] | list[bytes], head: bool = False) -> None:
            self.send_response_only(status)
            chunked = "content-length" not in headers and not head
            for name, value in headers.items():
                self.send_header(name, value)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in body:
                if head or not piece:
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _forward

    return Handler


def _stream(resp: http.client.HTTPResponse) -> Iterator[bytes]:
    while piece := resp.read(_CHUNK):
        yield piece
