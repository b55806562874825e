"""The cache as the server sees it: which names it claims, manifests and blobs for those.

Manifests by digest are cached for good (content-addressed: they cannot change). A tag is served
from the cache while its last check is younger than the upstream's ``ttl``; after that one HEAD
(rate limits count GETs, not HEADs) revalidates it, and only a changed digest costs a GET. When
the upstream is unreachable, times out, or answers 429/5xx, a cached copy is served anyway, with a
warning in the log and ``stale_serves`` counted; without one the client gets the upstream's error
(UNAVAILABLE 503 or TOOMANYREQUESTS 429) with a message naming the upstream.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator

from ..registry import Registry
from ..registry.errors import (
    BlobUnknownError,
    ManifestInvalidError,
    ManifestUnknownError,
    NameUnknownError,
)
from ..registry.manifests import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Manifest
from ..registry.names import is_digest_like, validate_digest
from ..registry.tags import paginate
from . import cache
from .blobs import BlobFetcher, Run, Subscriber
from .config import ProxyConfig, Upstream
from .errors import UpstreamError
from .stats import ProxyStats
from .tags import upstream_tags
from .upstream import UpstreamClient

log = logging.getLogger(__name__)

ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
MAX_MANIFEST = 4 * 2**20


class Proxy:
    """Pull-through caching for the names the configured upstreams claim."""

    def __init__(self, config: ProxyConfig, registry: Registry, run: Run,
                 stats: ProxyStats | None = None) -> None:
        self.config = config
        self._registry = registry
        self._run = run
        self.stats = stats or ProxyStats()
        self._clients = {u.prefix: UpstreamClient(u) for u in config.upstreams}
        self.blobs = BlobFetcher(registry, run, self.stats)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    def claims(self, name: str) -> bool:
        """Whether an upstream serves ``name`` (its pulls go through the cache)."""
        return self.config.route(name) is not None

    def allows_write(self, name: str) -> bool:
        """Writes go to names no upstream claims, and only when ``allowpush`` is on."""
        return self.config.allowpush and not self.claims(name)

    def _client(self, name: str) -> tuple[UpstreamClient, str]:
        found = self.config.route(name)
        assert found is not None, "callers check claims() first"
        upstream, remote = found
        return self._clients[upstream.prefix], remote

    # -- manifests (synchronous: run on the pool) ------------------------------------------

    def manifest(self, name: str, reference: str) -> Manifest:
        """The manifest ``reference`` names, from the cache or the upstream."""
        client, remote = self._client(name)
        store = self._registry.repository(name).manifests
        if is_digest_like(reference):
            validate_digest(reference)
            if store.exists(reference):
                self.stats.add("hits")
                return store.get(reference)
            return self._fetch_manifest(client, remote, name, reference, tag=None)
        cached = store.get(reference) if store.exists(reference) else None
        record = cache.read_tag(self._registry.driver, name, reference)
        upstream = client.upstream
        if cached is not None and record is not None and record.digest == cached.digest \
                and time.time() - record.checked < upstream.ttl:
            self.stats.add("hits")
            return cached
        try:
            if cached is not None and self._unchanged(client, remote, reference, cached.digest):
                cache.write_tag(self._registry.driver, name, reference, cached.digest)
                self.stats.add("hits")
                return cached
            return self._fetch_manifest(client, remote, name, reference, tag=reference)
        except UpstreamError as exc:
            self.stats.add("upstream_errors")
            if cached is None:
                raise
            self.stats.add("stale_serves")
            log.warning("serving cached %s:%s (%s) unrevalidated: %s", name, reference,
                        cached.digest, exc)
            return cached

    def _unchanged(self, client: UpstreamClient, remote: str, tag: str, digest: str) -> bool:
        """HEAD the tag upstream: whether it still names ``digest`` (gone upstream: unknown)."""
        resp = client.request("HEAD", remote, f"manifests/{tag}", {"Accept": ACCEPT})
        resp.close()
        if resp.status_code == 404:
            raise ManifestUnknownError(f"manifest {tag} unknown upstream")
        if resp.status_code != 200:
            raise UpstreamError(f"upstream HEAD manifests/{tag} answered {resp.status_code}")
        return str(resp.headers.get("docker-content-digest")) == digest

    def _fetch_manifest(self, client: UpstreamClient, remote: str, name: str, reference: str,
                        tag: str | None) -> Manifest:
        """GET a manifest upstream, check it, store it (and the tag) with its records."""
        resp = client.request("GET", remote, f"manifests/{reference}", {"Accept": ACCEPT})
        try:
            if resp.status_code == 404:
                raise ManifestUnknownError(f"manifest {reference} unknown to {name} upstream")
            if resp.status_code != 200:
                raise UpstreamError(f"upstream GET manifests/{reference} answered "
                                    f"{resp.status_code}")
            content = _read_limited(resp.iter_bytes(), MAX_MANIFEST)
        finally:
            resp.close()
        self.stats.add("misses")
        self.stats.add("upstream_bytes", len(content))
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        if tag is None and reference.startswith("sha256:") and digest != reference:
            raise ManifestInvalidError(f"upstream manifest {reference} has digest {digest}")
        store = self._registry.repository(name).manifests
        media_type = resp.headers.get("content-type")
        digest = store.put(content, media_type, tag=tag, check_references=False)
        cache.write_manifest(self._registry.driver, name, digest)
        if tag is not None:
            cache.write_tag(self._registry.driver, name, tag, digest)
        log.info("cached manifest %s:%s (%s)", name, reference, digest)
        return store.get(digest)

    def tags(self, name: str, n: int | None, last: str | None) -> list[str]:
        """The upstream's tags of ``name`` (paged here); the cached ones when it fails."""
        client, remote = self._client(name)
        try:
            return paginate(upstream_tags(client, remote), n, last)
        except NameUnknownError:
            pass  # Distribution answers the local tags on any upstream failure
        except UpstreamError as exc:
            self.stats.add("upstream_errors")
            self.stats.add("stale_serves")
            log.warning("serving the cached tag list of %s: %s", name, exc)
        return self._registry.repository(name).tags.list(n, last)

    def upstream(self, name: str) -> Upstream:
        return self._client(name)[0].upstream

    # -- blobs (asynchronous: a fetch streams) ----------------------------------------------

    async def blob_size(self, name: str, digest: str) -> int | None:
        """For HEAD: None when the blob is cached (serve it as usual), else the upstream size."""
        validate_digest(digest)
        repo = self._registry.repository(name)
        if await self._run(repo.blobs.exists, digest) or \
                await self._run(self.blobs.link_if_stored, name, digest):
            return None
        client, remote = self._client(name)
        resp = await self._run(client.request, "HEAD", remote, f"blobs/{digest}")
        await self._run(resp.close)
        if resp.status_code != 200:
            raise BlobUnknownError(f"blob {digest} unknown upstream", detail={"digest": digest})
        return int(resp.headers.get("content-length", "0"))

    async def blob(self, name: str, digest: str) -> tuple[int, Subscriber] | None:
        """For GET: None when the blob is (now) in storage, else a fetch's size and subscriber.

        The caller iterates or detaches the subscriber.
        """
        validate_digest(digest)
        repo = self._registry.repository(name)
        if await self._run(repo.blobs.exists, digest):
            self.stats.add("hits")
            return None
        client, remote = self._client(name)
        try:
            fetched = await self.blobs.fetch(client, remote, name, digest)
        except UpstreamError:
            self.stats.add("upstream_errors")
            raise
        self.stats.add("hits" if fetched is None else "misses")
        return fetched


def _read_limited(chunks: Iterator[bytes], limit: int) -> bytes:
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if len(buf) > limit:
            raise ManifestInvalidError(f"upstream manifest larger than {limit} bytes")
    return bytes(buf)
