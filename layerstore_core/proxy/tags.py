"""A proxied repository's tag list: the upstream's, all pages, as Distribution's proxy answers.

Distribution's ``proxyTagService.All`` asks the upstream and falls back to the local tags on
any failure; so do we (an unreachable, failing or rate-limiting upstream is also logged and
counted as a stale serve). The upstream's ``Link: <…?n=&last=>; rel="next"`` pages are followed
with only their ``n`` and ``last`` taken (never another host or path), up to :data:`MAX_PAGES`
pages of at most :data:`MAX_PAGE_BYTES` each; the client's own ``n``/``last`` then page through
the whole list here, as for a local repository.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

from ..registry.errors import NameUnknownError
from .errors import UpstreamError
from .upstream import UpstreamClient

#: Pages followed per tag list (Docker Hub pages by 100 or so; this bounds a looping upstream).
MAX_PAGES = 1000
#: Largest tag-list page read from the upstream, bytes.
MAX_PAGE_BYTES = 8 * 2**20


def upstream_tags(client: UpstreamClient, remote: str) -> list[str]:
    """Every tag the upstream lists for ``remote``; unknown upstream → NameUnknownError."""
    tags: list[str] = []
    params: dict[str, str] | None = None
    for _ in range(MAX_PAGES):
        resp = client.request("GET", remote, "tags/list", {"Accept": "application/json"},
                              params=params)
        try:
            if resp.status_code == 404:
                raise NameUnknownError(f"repository {remote} unknown upstream")
            if resp.status_code != 200:
                raise UpstreamError(f"upstream GET tags/list answered {resp.status_code}")
            tags.extend(_page(resp.iter_bytes(), remote))
            params = _next_page(resp.headers.get("link", ""))
        finally:
            resp.close()
        if params is None:
            return tags
    raise UpstreamError(f"upstream tag list of {remote}: more than {MAX_PAGES} pages")


def _page(chunks: Iterator[bytes], remote: str) -> list[str]:
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if len(buf) > MAX_PAGE_BYTES:
            raise UpstreamError(f"upstream tag list of {remote}: a page over {MAX_PAGE_BYTES} B")
    try:
        listed = json.loads(buf).get("tags") or []
    except (ValueError, AttributeError):
        raise UpstreamError(f"upstream tag list of {remote}: not a tag list") from None
    if not isinstance(listed, list) or not all(isinstance(t, str) for t in listed):
        raise UpstreamError(f"upstream tag list of {remote}: not a tag list")
    return listed


def _next_page(link: str) -> dict[str, str] | None:
    """``n`` and ``last`` of a ``rel="next"`` link; None without one."""
    for part in link.split(","):
        target, _, rest = part.partition(";")
        if 'rel="next"' not in rest.replace(" ", "") and "rel=next" not in rest:
            continue
        query = parse_qs(urlsplit(target.strip().strip("<>")).query)
        found = {k: query[k][0] for k in ("n", "last") if query.get(k)}
        return found if "last" in found else None
    return None
