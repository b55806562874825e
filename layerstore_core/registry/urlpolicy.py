"""Which ``urls`` a pushed manifest's layers may name: Distribution's ``validation.manifests.urls``.

A layer with ``urls`` is fetched by clients from elsewhere (Windows base layers, licensed
content), so the registry stores no blob for it and checks no blob. What it checks is the URLs:
each must be ``http`` or ``https`` without a fragment, match one ``allow`` regex and no ``deny``
regex (searched, not anchored, as Go's ``MatchString``). Distribution's default — validation on,
no ``allow`` — refuses every such URL; ``validation.disabled: true`` keeps only the syntax check.
Distribution 2.8 checks only some layer media types and answers a refused URL with 500 UNKNOWN;
we check every layer that carries ``urls`` (a deny list is not dodged by a media type) and answer
400 MANIFEST_INVALID naming the URL.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from typing import Any

from .errors import ManifestInvalidError

#: Docker's foreign layer: Distribution refuses one without ``urls``.
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


@dataclasses.dataclass(frozen=True)
class URLPolicy:
    """``allow``/``deny`` regexes; ``allow=None`` (validation disabled) allows any http(s) URL."""

    allow: tuple[re.Pattern[str], ...] | None = ()
    deny: tuple[re.Pattern[str], ...] = ()

    def refusal(self, url: object) -> str | None:
        """Why ``url`` may not be named by a layer, or None when it may."""
        if not isinstance(url, str):
            return "not a string"
        try:
            split = urllib.parse.urlsplit(url)
        except ValueError:
            return "not a URL"
        if split.scheme not in ("http", "https") or not split.netloc:
            return "not an http or https URL"
        if split.fragment or url.endswith("#"):
            return "has a fragment"
        if self.allow is not None and not any(p.search(url) for p in self.allow):
            return ("matches no validation.manifests.urls.allow pattern" if self.allow
                    else "validation.manifests.urls.allow is not set, so no URL is allowed")
        if any(p.search(url) for p in self.deny):
            return "matches a validation.manifests.urls.deny pattern"
        return None

    def check(self, layer: dict[str, Any], where: str) -> bool:
        """Check a layer descriptor's ``urls``; whether it has any (then no blob is needed)."""
        urls = layer.get("urls")
        if urls is None or urls == []:
            if layer.get("mediaType") == DOCKER_FOREIGN_LAYER:
                raise ManifestInvalidError(f"{where} is a foreign layer without urls")
            return False
        if not isinstance(urls, list):
            raise ManifestInvalidError(f"{where}.urls must be a list of URLs")
        for i, url in enumerate(urls):
            why = self.refusal(url)
            if why is not None:
                raise ManifestInvalidError(f"{where}.urls[{i}] is refused: {why}",
                                           detail={"url": str(url)[:500], "reason": why})
        return True


#: No validation: any http(s) URL without a fragment (library callers, the pull-through cache).
OPEN = URLPolicy(allow=None)
