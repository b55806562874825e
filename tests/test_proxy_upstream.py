"""The upstream client against a real HTTP upstream that asks for a Bearer token and rate-limits.

The upstream is a small ASGI app under uvicorn (the token-auth server of issue 12 is not on main
yet): ``/token`` answers Basic credentials with a token; ``/v2/…`` wants that token and answers
429 with the ``Retry-After`` the test sets before it serves.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from layerstore_core.proxy.config import Upstream
from layerstore_core.proxy.errors import UpstreamDeniedError, UpstreamRateLimitedError
from layerstore_core.proxy.upstream import UpstreamClient, parse_challenge, retry_after
from tests.backends._servers import serve_asgi

TOKEN = "tok-123"
BASIC = "Basic " + base64.b64encode(b"puller:pw").decode()


class TokenUpstream:
    """Counts token requests and 429s; ``limited`` = how many 429s to answer next."""

    def __init__(self) -> None:
        self.url = ""
        self.token_requests: list[str] = []
        self.limited = 0
        self.retry_after = "1"
        self.served = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        status, hdrs, body = self._answer(scope["path"], scope["query_string"].decode(),
                                          headers.get("authorization", ""))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in hdrs]})
        await send({"type": "http.response.body", "body": body})

    def _answer(self, path: str, query: str, auth: str) -> tuple[int, list[tuple[str, str]], bytes]:
        if path == "/token":
            self.token_requests.append(query)
            if auth != BASIC:
                return 401, [], b""
            return 200, [("content-type", "application/json")], json.dumps(
                {"token": TOKEN, "expires_in": 300}).encode()
        if auth != f"Bearer {TOKEN}":
            challenge = (f'Bearer realm="{self.url}/token",service="test-upstream",'
                         f'scope="repository:x:pull"')
            return 401, [("www-authenticate", challenge)], b""
        if self.limited:
            self.limited -= 1
            return 429, [("retry-after", self.retry_after)], b""
        self.served += 1
        return 200, [("content-type", "text/plain")], b"hello"


@pytest.fixture
def upstream() -> Iterator[TokenUpstream]:
    app = TokenUpstream()
    with serve_asgi(app) as url:
        app.url = url
        yield app


def test_bearer_token_flow_then_retry_after_on_429(upstream: TokenUpstream) -> None:
    client = UpstreamClient(Upstream(upstream.url, username="puller", password="pw"))
    upstream.limited = 1
    resp = client.request("GET", "x", "manifests/t")
    assert resp.status_code == 200 and resp.read() == b"hello"
    assert len(upstream.token_requests) == 1
    assert "scope=repository%3Ax%3Apull" in upstream.token_requests[0]
    assert "service=test-upstream" in upstream.token_requests[0]
    resp = client.request("GET", "x", "manifests/t")  # the cached token is reused
    assert resp.status_code == 200 and len(upstream.token_requests) == 1


def test_a_long_retry_after_is_not_slept_through(upstream: TokenUpstream) -> None:
    client = UpstreamClient(Upstream(upstream.url, username="puller", password="pw"))
    upstream.limited, upstream.retry_after = 5, "3600"
    with pytest.raises(UpstreamRateLimitedError) as caught:
        client.request("GET", "x", "manifests/t")
    assert caught.value.retry_after == 3600 and caught.value.code == "TOOMANYREQUESTS"


def test_refused_credentials_are_denied(upstream: TokenUpstream) -> None:
    client = UpstreamClient(Upstream(upstream.url, username="puller", password="wrong"))
    with pytest.raises(UpstreamDeniedError):
        client.request("GET", "x", "manifests/t")
    assert upstream.served == 0


def test_challenge_and_retry_after_parsing() -> None:
    assert parse_challenge('Bearer realm="https://a/token",service=reg,scope="r:x:pull"') == (
        "bearer", {"realm": "https://a/token", "service": "reg", "scope": "r:x:pull"})
    assert parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})
    assert retry_after("7") == 7.0
    assert retry_after("garbage") is None and retry_after(None) is None
    assert 0 <= (retry_after("Wed, 21 Oct 2015 07:28:00 GMT") or 0) < 1
