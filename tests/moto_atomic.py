"""moto's S3 server with atomic conditional writes: the one the test suite and benches start.

S3 decides a conditional write (``If-None-Match: *``, ``If-Match``) atomically: of requests at
once exactly one creates the object. moto 5.2.5 does not: ``S3Response.put_object`` looks the
key up, then works on the request (checksum, ACL, lock headers) and only then stores the object,
with nothing held in between, so two requests on its threaded server may both pass the check —
and the fences and part claims of the driver (``objectstore.fence``, ``objectstore.partclaims``)
would see two winners where S3 gives one. Run as ``python -m tests.moto_atomic [moto.server
arguments]``: moto's own server, in this process, with conditional object PUTs serialized
(unconditional ones still run in parallel). This patches moto's server-side handler, the
server the tests talk to over HTTP; no SDK is touched.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import moto.server
from moto.s3.responses import S3Response

_CONDITIONAL = threading.Lock()
_put_object = S3Response.put_object


def _atomic_put_object(self: S3Response) -> Any:
    """moto's ``put_object``, holding one lock from the precondition check to the store."""
    if self.headers.get("If-None-Match") or self.headers.get("If-Match"):
        with _CONDITIONAL:
            return _put_object(self)
    return _put_object(self)


def main(argv: list[str]) -> None:
    S3Response.put_object = _atomic_put_object  # type: ignore[method-assign]
    moto.server.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
