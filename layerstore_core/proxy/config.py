"""The ``proxy`` section: Distribution's keys plus a list of upstreams by namespace prefix.

Distribution's form (one upstream for every repository)::

    proxy: {remoteurl: https://registry-1.docker.io, username: u, password: p, ttl: 168h}

Our extension: ``upstreams``, each with the ``prefix`` of the names it serves (``docker.io``
serves ``docker.io/library/alpine`` as ``library/alpine`` upstream), its own credentials and ttl;
``allowpush: true`` keeps pushes to names no upstream claims (a cache and a private registry in
one). Without it the server is a pure mirror and refuses every write, as Distribution does.
``ttl`` keeps Distribution's meaning (cached content expires that long after it was fetched or
last revalidated) and is also how long a cached tag is served before a HEAD revalidates it.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlsplit

from ..registry.names import validate_name

#: Distribution's default ``proxy.ttl``.
DEFAULT_TTL = 168 * 3600.0
_UPSTREAM_KEYS = {"prefix", "remoteurl", "username", "password", "ttl"}


@dataclasses.dataclass(frozen=True)
class Upstream:
    """One upstream registry and the repository names it serves."""

    remoteurl: str
    prefix: str = ""
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    ttl: float = DEFAULT_TTL

    def remote_name(self, name: str) -> str | None:
        """The upstream's name for local ``name``, or None when this upstream does not claim it."""
        if not self.prefix:
            return name
        if name.startswith(self.prefix + "/"):
            return name[len(self.prefix) + 1:]
        return None


@dataclasses.dataclass(frozen=True)
class ProxyConfig:
    """Upstreams, longest prefix first, and whether unclaimed names take pushes."""

    upstreams: tuple[Upstream, ...]
    allowpush: bool = False

    def route(self, name: str) -> tuple[Upstream, str] | None:
        """The upstream claiming ``name`` (longest prefix wins) and the name it has there."""
        for upstream in self.upstreams:
            remote = upstream.remote_name(name)
            if remote is not None:
                return upstream, remote
        return None


def parse_proxy(raw: Any) -> ProxyConfig | None:
    """Validate the ``proxy`` section; None when absent or empty (not a cache)."""
    from ..server.config import ConfigError, _bool, _check_keys, _section, _str, parse_duration

    sec = _section(raw, "proxy")
    _check_keys(sec, "proxy", {*_UPSTREAM_KEYS - {"prefix"}, "upstreams", "allowpush"})
    entries: list[tuple[str, dict[str, Any]]] = []
    if sec.get("remoteurl"):
        entries.append(("proxy", {k: v for k, v in sec.items() if k in _UPSTREAM_KEYS}))
    listed = sec.get("upstreams") or []
    if not isinstance(listed, list):
        raise ConfigError("proxy.upstreams: expected a list of {prefix, remoteurl, ...}")
    for i, item in enumerate(listed):
        entry = _section(item, f"proxy.upstreams[{i}]")
        _check_keys(entry, f"proxy.upstreams[{i}]", _UPSTREAM_KEYS)
        entries.append((f"proxy.upstreams[{i}]", entry))
    if not entries:
        if sec:
            raise ConfigError("proxy: needs remoteurl or upstreams")
        return None
    upstreams: list[Upstream] = []
    for key, entry in entries:
        url = _str(entry.get("remoteurl", ""), f"{key}.remoteurl").rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{key}.remoteurl: expected an http(s) URL, got {url!r}")
        prefix = _str(entry.get("prefix", ""), f"{key}.prefix").strip("/")
        if prefix:
            try:
                validate_name(prefix)
            except ValueError as exc:
                raise ConfigError(f"{key}.prefix: {exc}") from None
        if any(u.prefix == prefix for u in upstreams):
            raise ConfigError(f"{key}.prefix: {prefix or '(none)'!r} is claimed twice")
        ttl = parse_duration(entry["ttl"], f"{key}.ttl") if "ttl" in entry else DEFAULT_TTL
        user, password = entry.get("username"), entry.get("password")
        upstreams.append(Upstream(
            remoteurl=url, prefix=prefix, ttl=ttl,
            username=_str(user, f"{key}.username") if user else None,
            password=_str(password, f"{key}.password") if password else None,
        ))
    upstreams.sort(key=lambda u: len(u.prefix), reverse=True)
    return ProxyConfig(tuple(upstreams), _bool(sec.get("allowpush", False), "proxy.allowpush"))
