"""Server configuration: the Distribution registry's ``config.yml`` keys, plus ``REGISTRY_`` env.

An existing Distribution config must work, so keys Distribution knows but we do not implement
(``storage.cache``, ``http.headers``, ``health``, …) are accepted and logged as ignored; any other
key is an error that names it. Environment variables override the file as in Distribution:
``REGISTRY_STORAGE_S3_BUCKET=b`` sets ``storage.s3.bucket``; ``REGISTRY_STORAGE=s3`` selects the
driver, dropping the file's driver section. Driver parameters are checked by the driver itself.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import re
import types
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml  # type: ignore[import-untyped,unused-ignore]  # stubs optional

from ..errors import LayerstoreError
from ..gc.retention import RetentionError, RetentionPolicy, parse_policies
from ..registry.redisconn import RedisSettings
from ..registry.urlpolicy import URLPolicy
from .fleetconfig import parse_cache, parse_redis, parse_workers
from .urls import URLConfig

if TYPE_CHECKING:
    from ..proxy.config import ProxyConfig

log = logging.getLogger(__name__)

DEFAULT_ROOT = "./registry-data"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
DEFAULT_PURGE_AGE = 168 * 3600.0
DEFAULT_PURGE_INTERVAL = 24 * 3600.0
DEFAULT_SCRUB_INTERVAL = 24 * 3600.0
DEFAULT_SCRUB_RATE = 50 * 2**20
DEFAULT_GC_INTERVAL = 24 * 3600.0
DEFAULT_GC_GRACE = 3600.0
ENV_PREFIX = "REGISTRY_"
#: Distribution's variable naming the config file: a path, not a key.
CONFIGURATION_PATH_ENV = "REGISTRY_CONFIGURATION_PATH"
#: While a config is parsed: dotted keys that environment variables added, and the variable.
_ENV_KEYS: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "layerstore_env_keys", default=types.MappingProxyType({}))

#: Keys of ``storage`` that are options, not a driver's name.
_STORAGE_OPTIONS = {"delete", "redirect", "maintenance", "cache", "tag"}
#: Distribution keys we accept but do not act on (dotted paths; a prefix covers its subtree).
_IGNORED = {
    "version", "log.hooks",
    "storage.tag",
    "http.http2",
    "health.file", "health.http", "health.tcp", "notifications.events",
    "reporting", "compatibility", "policy", "catalog",
}
#: Distribution keys whose absence would change security or correctness: refused, with why.
_REFUSED = {
    "middleware": "storage/registry/repository middleware (CDN redirects, auth hooks) is not "
                  "implemented; remove the section",
    "http.tls.letsencrypt": "automatic certificates are not implemented; give "
                            "http.tls.certificate and key (e.g. from certbot)",
}
_LOG_LEVELS = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "warning": "WARNING",
               "error": "ERROR", "fatal": "CRITICAL", "panic": "CRITICAL"}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on every connection, enforced before authentication (``server.guard``)."""

    #: ``http.maxheaderbytes``: request line plus headers (431, or 414 for the URL).
    max_header_bytes: int = 64 * 2**10
    #: ``http.maxconnections``: open connections; one more gets 503 and is closed.
    max_connections: int = 512
    #: ``http.readheadertimeout``: seconds for a request's line and headers to arrive (408).
    header_timeout: float = 20.0
    #: ``http.bodyidletimeout``: seconds a request body may send nothing before the close.
    body_timeout: float = 60.0
    #: ``http.idletimeout``: seconds a keep-alive connection may wait for its next request.
    keepalive_timeout: float = 30.0


class ConfigError(LayerstoreError, ValueError):
    """The configuration is malformed; the message names the offending key."""


@dataclasses.dataclass(frozen=True)
class PurgeConfig:
    """``storage.maintenance.uploadpurging``: drop uploads older than ``age`` every ``interval``."""

    enabled: bool = True
    age: float = DEFAULT_PURGE_AGE
    interval: float = DEFAULT_PURGE_INTERVAL
    dryrun: bool = False


@dataclasses.dataclass(frozen=True)
class ScrubConfig:
    """``storage.maintenance.scrub``: re-verify the store every ``interval``.

    Reads at most ``ratelimit`` bytes/s (0: no limit). Off unless enabled.
    """

    enabled: bool = False
    interval: float = DEFAULT_SCRUB_INTERVAL
    ratelimit: int = DEFAULT_SCRUB_RATE


@dataclasses.dataclass(frozen=True)
class GCConfig:
    """``storage.maintenance.gc`` (ours): collect garbage every ``interval``, online."""

    enabled: bool = False
    interval: float = DEFAULT_GC_INTERVAL
    grace: float = DEFAULT_GC_GRACE
    deleteuntagged: bool = False
    dryrun: bool = False


@dataclasses.dataclass(frozen=True)
class Htpasswd:
    """``auth.htpasswd``: a realm and a file of ``user:bcrypt-hash`` lines."""

    realm: str
    path: str


@dataclasses.dataclass(frozen=True)
class TokenAuth:
    """``auth.token``: Distribution's token authentication (keys checked again when loaded)."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: str | None = None
    jwks: str | None = None
    signingalgorithms: tuple[str, ...] = ()
    autoredirect: bool = False
    autoredirectpath: str = "/auth/token"


@dataclasses.dataclass(frozen=True)
class DebugConfig:
    """``http.debug``: the debug server's address and its Prometheus endpoint."""

    host: str
    port: int
    prometheus: bool = False
    prometheus_path: str = "/metrics"


@dataclasses.dataclass(frozen=True)
class HealthConfig:
    """``health.storagedriver``: stat the storage every ``interval``; see ``health.py``."""

    enabled: bool = False
    interval: float = 10.0
    threshold: int = 0


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything ``layerstore serve`` needs, validated."""

    driver: str = "filesystem"
    #: Not in the repr: it holds the driver's credentials as configured.
    driver_params: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: {"rootdirectory": DEFAULT_ROOT}, repr=False
    )
    delete_enabled: bool = False
    redirect_disabled: bool = False
    purge: PurgeConfig = PurgeConfig()
    scrub: ScrubConfig = ScrubConfig()
    #: ``storage.maintenance.readonly.enabled``: refuse every write (405), purge nothing.
    readonly: bool = False
    gc: GCConfig = GCConfig()
    retention: tuple[RetentionPolicy, ...] = ()
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    unix_socket: str | None = None
    secret: str | None = dataclasses.field(default=None, repr=False)
    tls_certificate: str | None = None
    tls_key: str | None = None
    #: ``http.tls.clientcas`` (mutual TLS), ``minimumtls``, ``ciphersuites`` (Go's names).
    #: ``http.headers``: added to every response, as Distribution does.
    headers: tuple[tuple[str, str], ...] = ()
    tls_clientcas: tuple[str, ...] = ()
    tls_minimum: str = "tls1.2"
    tls_ciphersuites: tuple[str, ...] = ()
    log_level: str = "INFO"
    #: ``log.formatter``, ``log.fields`` (added to every line), ``log.accesslog.disabled``.
    log_formatter: str = "text"
    log_fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    accesslog_disabled: bool = False
    htpasswd: Htpasswd | None = None
    token: TokenAuth | None = None
    limits: Limits = Limits()
    #: ``http.draintimeout``: on SIGTERM, how long running requests may finish (0: none).
    drain_timeout: float = 0.0
    debug: DebugConfig | None = None
    #: ``notifications.endpoints`` (``notifications.Endpoint``), the enabled ones.
    notifications: tuple[Any, ...] = ()
    health: HealthConfig = HealthConfig()
    #: ``storage.cache.blobdescriptor``: None, ``inmemory`` or ``redis``.
    blobdescriptor_cache: str | None = None
    #: The ``redis`` section (cache and fleet-wide leases).
    redis: RedisSettings | None = None
    #: ``http.workers``: processes sharing the port.
    workers: int = 1
    #: ``proxy``: a pull-through cache of these upstreams (None: a plain registry).
    proxy: ProxyConfig | None = None
    #: ``http.prefix``, ``http.host``, ``http.relativeurls``: where the API lives, how URLs look.
    urls: URLConfig = URLConfig()
    #: ``validation``: the URLs foreign layers may name (``registry.urlpolicy``).
    url_policy: URLPolicy = URLPolicy()


def parse_duration(value: Any, key: str) -> float:
    """Seconds in a Go duration string (``"168h"``, ``"1h30m"``, ``"10s"``)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{key}: expected a duration like '24h', got {value!r}")
    text = str(value).strip()
    if text in ("0", ""):
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ConfigError(f"{key}: expected a duration like '24h' or '90m', got {value!r}")
    return total


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0", ""):
        return False
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


def _str(value: Any, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return str(value)


def _section(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping, got {value!r}")
    return {str(k).lower(): v for k, v in value.items()}


def _is_ignored(key: str) -> bool:
    return any(key == p or key.startswith(p + ".") for p in _IGNORED)


def _refuse(key: str, value: Any) -> None:
    """Raise for a refused key at or under ``key`` (an ignored section may hold one)."""
    why = next((w for p, w in _REFUSED.items() if key == p or key.startswith(p + ".")), None)
    if why is not None:
        raise ConfigError(f"{key}: not supported: {why}")
    if isinstance(value, dict) and any(p.startswith(key + ".") for p in _REFUSED):
        for k, v in value.items():
            _refuse(f"{key}.{str(k).lower()}", v)


def _check_keys(section: Mapping[str, Any], prefix: str, known: set[str]) -> None:
    for k in section:
        key = f"{prefix}.{k}" if prefix else k
        if k in known:
            continue
        if key == "version":  # every Distribution config carries it; nothing to say
            continue
        _refuse(key, section[k])
        if _is_ignored(key):
            log.warning("config key %s is accepted for compatibility and ignored", key)
            continue
        variable = _ENV_KEYS.get().get(key)
        if variable is not None:  # Kubernetes sets REGISTRY_PORT etc. for a service "registry"
            log.warning("environment variable %s names no configuration key (%s): ignored",
                        variable, key)
            continue
        here = ", ".join(sorted(known))
        raise ConfigError(f"{key}: unknown configuration key (known here: {here})")


def apply_env(raw: dict[str, Any], environ: Mapping[str, str],
              created: dict[str, str] | None = None) -> dict[str, Any]:
    """Overlay ``REGISTRY_A_B_C=v`` as ``a.b.c = v`` (Distribution's override rule).

    ``created`` receives each dotted key a variable added (not in the file) and the variable's
    name, so that an unknown one is a warning rather than an error.
    """
    out: dict[str, Any] = _deep_lower(raw)
    created = {} if created is None else created
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in (ENV_PREFIX, CONFIGURATION_PATH_ENV):
            continue
        parts = name[len(ENV_PREFIX):].lower().split("_")
        value = environ[name]
        if parts == ["storage"]:
            storage = _section(out.get("storage"), "storage")
            kept = {k: v for k, v in storage.items() if k in _STORAGE_OPTIONS or k == value}
            kept.setdefault(value.lower(), {})
            out["storage"] = kept
            continue
        node = out
        for depth, part in enumerate(parts):
            if part not in node:
                created.setdefault(".".join(parts[: depth + 1]), name)
            if depth == len(parts) - 1:
                node[part] = value
                break
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
    return out


def _deep_lower(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k).lower(): _deep_lower(v) for k, v in value.items()}
    return value


def _parse_storage(raw: Any) -> dict[str, Any]:
    storage = _section(raw, "storage")
    drivers = [k for k in storage if k not in _STORAGE_OPTIONS]
    if len(drivers) > 1:
        raise ConfigError(f"storage: exactly one driver section allowed, found {sorted(drivers)}")
    out: dict[str, Any] = {}
    if drivers:
        name = drivers[0]
        out["driver"] = name
        out["driver_params"] = _section(storage[name], f"storage.{name}")
    delete = _section(storage.get("delete"), "storage.delete")
    _check_keys(delete, "storage.delete", {"enabled"})
    out["delete_enabled"] = _bool(delete.get("enabled", False), "storage.delete.enabled")
    redirect = _section(storage.get("redirect"), "storage.redirect")
    _check_keys(redirect, "storage.redirect", {"disable"})
    out["redirect_disabled"] = _bool(redirect.get("disable", False), "storage.redirect.disable")
    maintenance = _section(storage.get("maintenance"), "storage.maintenance")
    _check_keys(maintenance, "storage.maintenance",
                {"uploadpurging", "scrub", "readonly", "gc", "retention"})
    readonly = _section(maintenance.get("readonly"), "storage.maintenance.readonly")
    _check_keys(readonly, "storage.maintenance.readonly", {"enabled"})
    out["readonly"] = _bool(readonly.get("enabled", False), "storage.maintenance.readonly.enabled")
    out["purge"] = _parse_purge(maintenance.get("uploadpurging"))
    out["scrub"] = _parse_scrub(maintenance.get("scrub"))
    out["gc"] = _parse_gc(maintenance.get("gc"))
    try:
        out["retention"] = parse_policies(maintenance.get("retention"), parse_duration)
    except RetentionError as exc:
        raise ConfigError(str(exc)) from None
    out["blobdescriptor_cache"] = parse_cache(
        _section(storage.get("cache"), "storage.cache"), _check_keys, ConfigError
    )
    for k in ("tag",):
        if k in storage:
            log.warning("config key storage.%s is accepted for compatibility and ignored", k)
    return out


def _parse_purge(raw: Any) -> PurgeConfig:
    key = "storage.maintenance.uploadpurging"
    sec = _section(raw, key)
    _check_keys(sec, key, {"enabled", "age", "interval", "dryrun"})
    d = PurgeConfig()
    return PurgeConfig(
        enabled=_bool(sec.get("enabled", d.enabled), f"{key}.enabled"),
        age=parse_duration(sec["age"], f"{key}.age") if "age" in sec else d.age,
        interval=(parse_duration(sec["interval"], f"{key}.interval")
                  if "interval" in sec else d.interval),
        dryrun=_bool(sec.get("dryrun", d.dryrun), f"{key}.dryrun"),
    )


def _parse_scrub(raw: Any) -> ScrubConfig:
    key = "storage.maintenance.scrub"
    sec = _section(raw, key)
    _check_keys(sec, key, {"enabled", "interval", "ratelimit"})
    d = ScrubConfig()
    rate = sec.get("ratelimit", d.ratelimit)
    if isinstance(rate, bool) or not str(rate).strip().isdigit():
        raise ConfigError(f"{key}.ratelimit: expected bytes per second (an integer >= 0), "
                          f"got {rate!r}")
    interval = (parse_duration(sec["interval"], f"{key}.interval")
                if "interval" in sec else d.interval)
    enabled = _bool(sec.get("enabled", d.enabled), f"{key}.enabled")
    if enabled and interval <= 0:
        raise ConfigError(f"{key}.interval: must be positive when the scrub is enabled")
    return ScrubConfig(enabled=enabled, interval=interval, ratelimit=int(str(rate).strip()))


def _parse_gc(raw: Any) -> GCConfig:
    key = "storage.maintenance.gc"
    sec = _section(raw, key)
    _check_keys(sec, key, {"enabled", "interval", "grace", "deleteuntagged", "dryrun"})
    d = GCConfig()

    def duration(name: str, default: float) -> float:
        return parse_duration(sec[name], f"{key}.{name}") if name in sec else default

    return GCConfig(
        enabled=_bool(sec.get("enabled", d.enabled), f"{key}.enabled"),
        interval=duration("interval", d.interval),
        grace=duration("grace", d.grace),
        deleteuntagged=_bool(sec.get("deleteuntagged", d.deleteuntagged), f"{key}.deleteuntagged"),
        dryrun=_bool(sec.get("dryrun", d.dryrun), f"{key}.dryrun"),
    )


def parse_addr(value: Any, key: str = "http.addr") -> tuple[str, int]:
    """``host:port`` (``:5000`` means every interface, as in Go)."""
    text = _str(value, key)
    host, sep, port = text.rpartition(":")
    if not sep or not re.fullmatch(r"[0-9]{1,5}", port) or not 0 < int(port) < 65536:
        raise ConfigError(f"{key}: expected host:port such as 127.0.0.1:5000, got {value!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


#: ``http.<key>`` -> (Limits field, parser); durations are Go strings, the others integers.
_LIMIT_KEYS = {
    "maxheaderbytes": "max_header_bytes",
    "maxconnections": "max_connections",
    "readheadertimeout": "header_timeout",
    "bodyidletimeout": "body_timeout",
    "idletimeout": "keepalive_timeout",
}


def _positive_int(value: Any, key: str) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[0-9]{1,12}", text) or int(text) == 0:
        raise ConfigError(f"{key}: expected a positive integer, got {value!r}")
    return int(text)


def _parse_limits(http: Mapping[str, Any]) -> Limits:
    values: dict[str, Any] = {}
    for key, field in _LIMIT_KEYS.items():
        if key not in http:
            continue
        name = f"http.{key}"
        if key.endswith("timeout"):
            seconds = parse_duration(http[key], name)
            if seconds <= 0:
                raise ConfigError(f"{name}: expected a duration above zero, got {http[key]!r}")
            values[field] = seconds
        else:
            values[field] = _positive_int(http[key], name)
    return Limits(**values)


def _parse_http(raw: Any) -> dict[str, Any]:
    http = _section(raw, "http")
    _check_keys(http, "http", {"addr", "net", "secret", "tls", "draintimeout", "debug", "workers",
                               "headers", "prefix", "host", "relativeurls", *_LIMIT_KEYS})
    out: dict[str, Any] = {"limits": _parse_limits(http), "debug": _parse_debug(http.get("debug")),
                           "urls": _parse_urls(http)}
    headers = http.get("headers") or {}
    if not isinstance(headers, dict):
        raise ConfigError(f"http.headers: expected a mapping of header to values, got {headers!r}")
    out["headers"] = tuple((str(name), value) for name, values in headers.items()
                           for value in _str_list(values, f"http.headers.{name}"))
    if "draintimeout" in http:
        out["drain_timeout"] = parse_duration(http["draintimeout"], "http.draintimeout")
    if "workers" in http:
        out["workers"] = parse_workers(http["workers"], ConfigError)
    net = _str(http.get("net", "tcp"), "http.net").lower()
    if net not in ("tcp", "unix"):
        raise ConfigError(f"http.net: expected tcp or unix, got {net!r}")
    if "addr" in http:
        if net == "unix":
            out["unix_socket"] = _str(http["addr"], "http.addr")
        else:
            out["host"], out["port"] = parse_addr(http["addr"])
    if http.get("secret") not in (None, ""):
        out["secret"] = _str(http["secret"], "http.secret")
    tls = _section(http.get("tls"), "http.tls")
    _check_keys(tls, "http.tls", {"certificate", "key", "clientcas", "minimumtls",
                                  "ciphersuites"})
    if tls.get("certificate") or tls.get("key"):
        if not (tls.get("certificate") and tls.get("key")):
            raise ConfigError("http.tls: both certificate and key are required")
        out["tls_certificate"] = _str(tls["certificate"], "http.tls.certificate")
        out["tls_key"] = _str(tls["key"], "http.tls.key")
    out.update(_parse_tls_policy(tls, "tls_certificate" in out))
    return out


def _parse_urls(http: Mapping[str, Any]) -> URLConfig:
    """``http.prefix`` (``/pre/``, ``pre`` or ``/pre``), ``http.host``, ``http.relativeurls``."""
    prefix = _str(http.get("prefix") or "", "http.prefix").strip("/")
    if prefix and not re.fullmatch(r"[A-Za-z0-9._~!$&'()*+,;=:@%/-]+", prefix):
        raise ConfigError(f"http.prefix: expected a path such as /registry/, got {prefix!r}")
    host = _str(http.get("host") or "", "http.host").strip() or None
    if host is not None:
        split = urllib.parse.urlsplit(host)
        if split.scheme not in ("http", "https") or not split.netloc or split.query \
                or split.fragment or any(c.isspace() for c in host):
            raise ConfigError(f"http.host: expected an absolute URL such as "
                              f"https://registry.example.com/, got {host!r}")
        if split.path.rstrip("/") and not split.path.endswith("/"):
            log.warning("http.host %s: URLs are resolved against it as in Distribution, so its "
                        "last path segment is dropped; end it with '/' to keep it", host)
    return URLConfig(prefix="/" + prefix if prefix else "", host=host,
                     relative=_bool(http.get("relativeurls", False), "http.relativeurls"))


def _str_list(value: Any, key: str) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if isinstance(value, str):  # from an environment variable: comma separated
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list, got {value!r}")
    return tuple(_str(v, key) for v in value)


def _parse_tls_policy(tls: Mapping[str, Any], enabled: bool) -> dict[str, Any]:
    from .tlspolicy import VERSIONS, openssl_ciphers

    out: dict[str, Any] = {
        "tls_clientcas": _str_list(tls.get("clientcas"), "http.tls.clientcas"),
        "tls_ciphersuites": _str_list(tls.get("ciphersuites"), "http.tls.ciphersuites"),
        "tls_minimum": _str(tls.get("minimumtls", "tls1.2"), "http.tls.minimumtls").lower(),
    }
    if out["tls_minimum"] not in VERSIONS:
        raise ConfigError(f"http.tls.minimumtls: expected one of {sorted(VERSIONS)}, "
                          f"got {tls.get('minimumtls')!r}")
    try:
        openssl_ciphers(out["tls_ciphersuites"])
    except ValueError as exc:
        raise ConfigError(f"http.tls.ciphersuites: {exc}") from None
    if not enabled and (out["tls_clientcas"] or out["tls_ciphersuites"]
                        or "minimumtls" in tls):
        raise ConfigError("http.tls: clientcas, minimumtls and ciphersuites need "
                          "http.tls.certificate and key")
    return out


def _parse_debug(raw: Any) -> DebugConfig | None:
    sec = _section(raw, "http.debug")
    _check_keys(sec, "http.debug", {"addr", "prometheus"})
    prom = _section(sec.get("prometheus"), "http.debug.prometheus")
    _check_keys(prom, "http.debug.prometheus", {"enabled", "path"})
    if not sec.get("addr"):
        if prom:
            raise ConfigError("http.debug.prometheus: needs http.debug.addr to serve on")
        return None
    host, port = parse_addr(sec["addr"], "http.debug.addr")
    path = _str(prom.get("path", "/metrics"), "http.debug.prometheus.path")
    if not path.startswith("/") or path.startswith("/debug/"):
        raise ConfigError(f"http.debug.prometheus.path: expected a path such as /metrics "
                          f"outside /debug/, got {path!r}")
    return DebugConfig(host, port, _bool(prom.get("enabled", False),
                                         "http.debug.prometheus.enabled"), path)


def _parse_health(raw: Any) -> HealthConfig:
    sec = _section(raw, "health")
    _check_keys(sec, "health", {"storagedriver"})
    key = "health.storagedriver"
    check = _section(sec.get("storagedriver"), key)
    _check_keys(check, key, {"enabled", "interval", "threshold"})
    interval = parse_duration(check.get("interval", "10s"), f"{key}.interval")
    threshold = check.get("threshold", 0)
    if isinstance(threshold, bool) or not str(threshold).strip().isdigit():
        raise ConfigError(f"{key}.threshold: expected an integer >= 0, got {threshold!r}")
    enabled = _bool(check.get("enabled", False), f"{key}.enabled")
    if enabled and interval <= 0:
        raise ConfigError(f"{key}.interval: must be positive when the check is enabled")
    return HealthConfig(enabled, interval, int(str(threshold).strip()))


def _parse_validation(raw: Any) -> URLPolicy:
    """``validation``: ``disabled`` and ``manifests.urls.allow``/``deny`` (lists of regexes).

    The deprecated ``enabled`` is read as Distribution reads it.
    """
    sec = _section(raw, "validation")
    _check_keys(sec, "validation", {"enabled", "disabled", "manifests"})
    manifests = _section(sec.get("manifests"), "validation.manifests")
    _check_keys(manifests, "validation.manifests", {"urls"})
    urls = _section(manifests.get("urls"), "validation.manifests.urls")
    _check_keys(urls, "validation.manifests.urls", {"allow", "deny"})
    lists: dict[str, tuple[re.Pattern[str], ...]] = {}
    for name in ("allow", "deny"):
        key = f"validation.manifests.urls.{name}"
        try:
            lists[name] = tuple(re.compile(p) for p in _str_list(urls.get(name), key))
        except re.error as exc:
            raise ConfigError(f"{key}: not a regular expression: {exc}") from None
    # Distribution: enabled unless disabled; ``enabled: false`` alone does not turn it off.
    enabled = (_bool(sec.get("enabled", False), "validation.enabled")
               or not _bool(sec.get("disabled", False), "validation.disabled"))
    if not enabled:
        return URLPolicy(allow=None)
    return URLPolicy(allow=lists["allow"], deny=lists["deny"])


def _parse_auth(raw: Any) -> dict[str, Any]:
    auth = _section(raw, "auth")
    _check_keys(auth, "auth", {"htpasswd", "token"})
    if len(auth) > 1:
        raise ConfigError(f"auth: configure one scheme, not {sorted(auth)}")
    if "token" in auth:
        return {"token": _parse_token(_section(auth["token"], "auth.token"))}
    if "htpasswd" not in auth:
        return {}
    sec = _section(auth["htpasswd"], "auth.htpasswd")
    _check_keys(sec, "auth.htpasswd", {"realm", "path"})
    if not sec.get("path"):
        raise ConfigError("auth.htpasswd.path: required (a file of user:bcrypt-hash lines)")
    realm = _str(sec.get("realm", "basic-realm"), "auth.htpasswd.realm")
    return {"htpasswd": Htpasswd(realm, _str(sec["path"], "auth.htpasswd.path"))}


def _parse_token(sec: dict[str, Any]) -> TokenAuth:
    key = "auth.token"
    _check_keys(sec, key, {f.name for f in dataclasses.fields(TokenAuth)})
    for required in ("realm", "service", "issuer"):
        if not sec.get(required):
            raise ConfigError(f"{key}.{required}: required")
    if not sec.get("rootcertbundle") and not sec.get("jwks"):
        raise ConfigError(f"{key}: rootcertbundle or jwks is required (the token signers' keys)")
    algorithms = sec.get("signingalgorithms") or []
    if not isinstance(algorithms, list):
        raise ConfigError(f"{key}.signingalgorithms: expected a list, got {algorithms!r}")
    path = _str(sec.get("autoredirectpath", "/auth/token"), f"{key}.autoredirectpath")
    if not path.startswith("/"):
        raise ConfigError(f"{key}.autoredirectpath: must start with '/', got {path!r}")
    return TokenAuth(
        realm=_str(sec["realm"], f"{key}.realm"),
        service=_str(sec["service"], f"{key}.service"),
        issuer=_str(sec["issuer"], f"{key}.issuer"),
        rootcertbundle=(_str(sec["rootcertbundle"], f"{key}.rootcertbundle")
                        if sec.get("rootcertbundle") else None),
        jwks=_str(sec["jwks"], f"{key}.jwks") if sec.get("jwks") else None,
        signingalgorithms=tuple(_str(a, f"{key}.signingalgorithms") for a in algorithms),
        autoredirect=_bool(sec.get("autoredirect", False), f"{key}.autoredirect"),
        autoredirectpath=path,
    )


def _parse_log(raw: Any, top_level: Any) -> dict[str, Any]:
    sec = _section(raw, "log")
    _check_keys(sec, "log", {"level", "formatter", "fields", "accesslog"})
    level = sec.get("level", top_level if top_level is not None else "info")
    name = _LOG_LEVELS.get(_str(level, "log.level").lower())
    if name is None:
        raise ConfigError(f"log.level: expected one of {sorted(_LOG_LEVELS)}, got {level!r}")
    formatter = _str(sec.get("formatter", "text"), "log.formatter").lower()
    if formatter not in ("text", "json"):
        raise ConfigError(f"log.formatter: expected text or json, got {formatter!r}"
                          + (" (logstash is not supported: use json)"
                             if formatter == "logstash" else ""))
    fields = sec.get("fields") or {}
    if not isinstance(fields, dict):
        raise ConfigError(f"log.fields: expected a mapping, got {fields!r}")
    access = _section(sec.get("accesslog"), "log.accesslog")
    _check_keys(access, "log.accesslog", {"disabled"})
    return {"log_level": name, "log_formatter": formatter,
            "log_fields": {str(k): v for k, v in fields.items()},
            "accesslog_disabled": _bool(access.get("disabled", False), "log.accesslog.disabled")}


def parse_config(raw: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None) -> Config:
    """Validate a decoded YAML document (``None`` = no file) with env overrides applied."""
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(f"config: expected a mapping at the top level, got {type(raw).__name__}")
    created: dict[str, str] = {}
    doc = apply_env(dict(raw or {}), environ or {}, created)
    token = _ENV_KEYS.set(created)
    try:
        return _parse_doc(doc)
    finally:
        _ENV_KEYS.reset(token)


def _parse_doc(doc: dict[str, Any]) -> Config:
    from .notifications import parse_endpoints  # it uses this module's parsers

    _check_keys(doc, "", {"storage", "http", "log", "auth", "health", "loglevel",
                          "notifications", "redis", "proxy", "validation"})
    values: dict[str, Any] = {}
    values.update(_parse_storage(doc.get("storage")))
    values.update(_parse_http(doc.get("http")))
    values.update(_parse_auth(doc.get("auth")))
    values["health"] = _parse_health(doc.get("health"))
    values["url_policy"] = _parse_validation(doc.get("validation"))
    values["notifications"] = parse_endpoints(doc.get("notifications"))
    values.update(_parse_log(doc.get("log"), doc.get("loglevel")))
    values["redis"] = parse_redis(doc.get("redis"), _section, _check_keys, parse_duration,
                                  ConfigError)
    if values.get("blobdescriptor_cache") == "redis" and values["redis"] is None:
        raise ConfigError("storage.cache.blobdescriptor: redis needs a redis section (redis.addr)")

    from ..proxy.config import parse_proxy  # the proxy parser uses this module's helpers

    values["proxy"] = parse_proxy(doc.get("proxy"))
    return Config(**values)


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate ``path`` (or the defaults when ``None``)."""
    raw: Any = None
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(raw, environ)
