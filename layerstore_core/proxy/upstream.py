"""The upstream client: httpx with the registry token flow, basic auth and Retry-After.

httpx because it streams responses, pools connections and is thread-safe (every call here runs
on the server's thread pool). A request first goes out with the token cached for its scope (or
basic credentials); a ``401`` with ``WWW-Authenticate: Bearer realm=…,service=…`` sends us to the
token endpoint (with the configured credentials, or anonymously) and the request is retried once;
``Basic`` is answered with the credentials. A ``429`` is retried after its ``Retry-After`` when
that is at most :data:`MAX_RETRY_WAIT`; otherwise it is the caller's to handle (serve stale).
"""

from __future__ import annotations

import email.utils
import logging
import re
import threading
import time
from collections.abc import Mapping

import httpx

from .config import Upstream
from .errors import UpstreamDeniedError, UpstreamError, UpstreamRateLimitedError

log = logging.getLogger(__name__)

#: Connect/read timeout of every upstream request, seconds.
TIMEOUT = 30.0
#: Longest Retry-After we sleep through before giving up on a 429, seconds.
MAX_RETRY_WAIT = 10.0
RATE_LIMIT_RETRIES = 2
#: A token without ``expires_in`` lives 60 s (the token spec's default).
DEFAULT_TOKEN_LIFE = 60.0
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="r",service="s"`` → ``("bearer", {"realm": "r", "service": "s"})``."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _PARAM.finditer(rest)}
    return scheme.lower(), params


def retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` asks for (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class UpstreamClient:
    """Requests to one upstream's ``/v2/<name>/…``, authenticated as it asks."""

    def __init__(self, upstream: Upstream, transport: httpx.BaseTransport | None = None) -> None:
        self.upstream = upstream
        self._http = httpx.Client(timeout=TIMEOUT, transport=transport, follow_redirects=True)
        self._basic = (httpx.BasicAuth(upstream.username, upstream.password or "")
                       if upstream.username else None)
        self._basic_header = _basic_header(upstream) if upstream.username else None
        self._tokens: dict[str, tuple[str, float]] = {}
        self._scheme: str | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, name: str, path: str,
                headers: Mapping[str, str] | None = None,
                params: Mapping[str, str] | None = None) -> httpx.Response:
        """Send ``method /v2/<name>/<path>``; a streamed response the caller must close.

        Transport failures are :class:`UpstreamError`; a 429 past our waiting is
        :class:`UpstreamRateLimitedError`; 401/403 after authenticating is
        :class:`UpstreamDeniedError`. Other statuses are the caller's.
        """
        url = f"{self.upstream.remoteurl}/v2/{name}/{path}"
        scope = f"repository:{name}:pull"
        authenticated = False
        for attempt in range(RATE_LIMIT_RETRIES + 2):
            resp = self._send(method, url, headers, scope, params)
            if resp.status_code == 401 and not authenticated:
                authenticated = True
                challenge = resp.headers.get("www-authenticate", "")
                resp.close()
                self._answer(challenge, scope)
                continue
            if resp.status_code in (401, 403):
                resp.close()
                raise UpstreamDeniedError(
                    f"upstream {self.upstream.remoteurl} refused access to {name} "
                    f"({resp.status_code})")
            if resp.status_code == 429:
                wait = retry_after(resp.headers.get("retry-after"))
                resp.close()
                if wait is None or wait > MAX_RETRY_WAIT or attempt >= RATE_LIMIT_RETRIES:
                    raise UpstreamRateLimitedError(
                        f"upstream {self.upstream.remoteurl} is rate-limiting", retry_after=wait)
                log.info("upstream %s: 429, retrying after %.1fs", self.upstream.remoteurl, wait)
                time.sleep(wait)
                continue
            if resp.status_code >= 500:
                resp.close()
                raise UpstreamError(
                    f"upstream {self.upstream.remoteurl} answered {resp.status_code}")
            return resp
        raise UpstreamError(f"upstream {self.upstream.remoteurl}: too many retries")

    def _send(self, method: str, url: str, headers: Mapping[str, str] | None,
              scope: str, params: Mapping[str, str] | None = None) -> httpx.Response:
        hdrs = dict(headers or {})
        auth = self._authorization(scope)
        if auth:
            hdrs["Authorization"] = auth
        try:
            request = self._http.build_request(method, url, headers=hdrs, params=params)
            return self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise UpstreamError(
                f"upstream {self.upstream.remoteurl} unreachable: {type(exc).__name__}: {exc}"
            ) from exc

    def _authorization(self, scope: str) -> str | None:
        with self._lock:
            token = self._tokens.get(scope)
            scheme = self._scheme
        if token is not None and token[1] > time.monotonic():
            return f"Bearer {token[0]}"
        if scheme == "basic":
            return self._basic_header
        return None

    def _answer(self, challenge: str, scope: str) -> None:
        """Take what a 401's challenge asks for: a token for ``scope``, or basic credentials."""
        scheme, params = parse_challenge(challenge)
        with self._lock:
            self._scheme = scheme
        if scheme == "basic":
            if self._basic is None:
                raise UpstreamDeniedError(
                    f"upstream {self.upstream.remoteurl} needs credentials (proxy.username)")
            return
        if scheme != "bearer" or "realm" not in params:
            raise UpstreamDeniedError(
                f"upstream {self.upstream.remoteurl}: unsupported challenge {challenge[:80]!r}")
        query = {"scope": scope}
        if params.get("service"):
            query["service"] = params["service"]
        try:
            resp = self._http.get(params["realm"], params=query, auth=self._basic or None)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"token endpoint {params['realm']} unreachable: {exc}") from exc
        if resp.status_code != 200:
            raise UpstreamDeniedError(
                f"token endpoint {params['realm']} answered {resp.status_code}")
        try:
            doc = resp.json()
            token = str(doc.get("token") or doc["access_token"])
            life = float(doc.get("expires_in") or DEFAULT_TOKEN_LIFE)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UpstreamError(f"token endpoint {params['realm']}: malformed answer") from None
        with self._lock:
            self._tokens[scope] = (token, time.monotonic() + max(1.0, life - 5.0))


def _basic_header(upstream: Upstream) -> str:
    auth = httpx.BasicAuth(upstream.username or "", upstream.password or "")
    request = next(auth.auth_flow(httpx.Request("GET", "http://upstream/")))
    return request.headers["authorization"]
