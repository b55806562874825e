"""Server configuration: the Distribution registry's ``config.yml`` keys, plus ``REGISTRY_`` env.

An existing Distribution config must work, so keys Distribution knows but we do not implement
(``storage.cache``, ``http.headers``, ``health``, …) are accepted and logged as ignored; any other
key is an error that names it. Environment variables override the file as in Distribution:
``REGISTRY_STORAGE_S3_BUCKET=b`` sets ``storage.s3.bucket``; ``REGISTRY_STORAGE=s3`` selects the
driver, dropping the file's driver section. Driver parameters are checked by the driver itself.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]  # stubs optional

from ..gc.retention import RetentionError, RetentionPolicy, parse_policies

log = logging.getLogger(__name__)

DEFAULT_ROOT = "./registry-data"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
DEFAULT_PURGE_AGE = 168 * 3600.0
DEFAULT_PURGE_INTERVAL = 24 * 3600.0
DEFAULT_GC_INTERVAL = 24 * 3600.0
DEFAULT_GC_GRACE = 3600.0
ENV_PREFIX = "REGISTRY_"

#: Keys of ``storage`` that are options, not a driver's name.
_STORAGE_OPTIONS = {"delete", "redirect", "maintenance", "cache", "tag"}
#: Distribution keys we accept but do not act on (dotted paths; a prefix covers its subtree).
_IGNORED = {
    "version", "log.formatter", "log.fields", "log.accesslog", "log.hooks", "loglevel",
    "storage.cache", "storage.tag", "storage.maintenance.readonly",
    "http.prefix", "http.host", "http.relativeurls", "http.headers", "http.debug", "http.http2",
    "http.draintimeout", "http.tls.clientcas", "http.tls.letsencrypt", "http.tls.minimumtls",
    "http.tls.ciphersuites", "health", "notifications", "redis",
    "reporting", "middleware", "proxy", "compatibility", "validation", "policy", "catalog",
}
_LOG_LEVELS = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "warning": "WARNING",
               "error": "ERROR", "fatal": "CRITICAL", "panic": "CRITICAL"}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ConfigError(ValueError):
    """The configuration is malformed; the message names the offending key."""


@dataclasses.dataclass(frozen=True)
class PurgeConfig:
    """``storage.maintenance.uploadpurging``: drop uploads older than ``age`` every ``interval``."""

    enabled: bool = True
    age: float = DEFAULT_PURGE_AGE
    interval: float = DEFAULT_PURGE_INTERVAL
    dryrun: bool = False


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
class Config:
    """Everything ``layerstore serve`` needs, validated."""

    driver: str = "filesystem"
    driver_params: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: {"rootdirectory": DEFAULT_ROOT}
    )
    delete_enabled: bool = False
    redirect_disabled: bool = False
    purge: PurgeConfig = PurgeConfig()
    gc: GCConfig = GCConfig()
    retention: tuple[RetentionPolicy, ...] = ()
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    unix_socket: str | None = None
    secret: str | None = None
    tls_certificate: str | None = None
    tls_key: str | None = None
    log_level: str = "INFO"
    htpasswd: Htpasswd | None = None


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


def _check_keys(section: Mapping[str, Any], prefix: str, known: set[str]) -> None:
    for k in section:
        key = f"{prefix}.{k}" if prefix else k
        if k in known:
            continue
        if key == "version":  # every Distribution config carries it; nothing to say
            continue
        if _is_ignored(key):
            log.warning("config key %s is accepted for compatibility and ignored", key)
            continue
        here = ", ".join(sorted(known))
        raise ConfigError(f"{key}: unknown configuration key (known here: {here})")


def apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Overlay ``REGISTRY_A_B_C=v`` as ``a.b.c = v`` (Distribution's override rule)."""
    out: dict[str, Any] = _deep_lower(raw)
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX:
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
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
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
    _check_keys(maintenance, "storage.maintenance", {"uploadpurging", "gc", "retention"})
    out["purge"] = _parse_purge(maintenance.get("uploadpurging"))
    out["gc"] = _parse_gc(maintenance.get("gc"))
    try:
        out["retention"] = parse_policies(maintenance.get("retention"), parse_duration)
    except RetentionError as exc:
        raise ConfigError(str(exc)) from None
    for k in ("cache", "tag"):
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
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{key}: expected host:port such as 127.0.0.1:5000, got {value!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def _parse_http(raw: Any) -> dict[str, Any]:
    http = _section(raw, "http")
    _check_keys(http, "http", {"addr", "net", "secret", "tls"})
    out: dict[str, Any] = {}
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
    _check_keys(tls, "http.tls", {"certificate", "key"})
    if tls.get("certificate") or tls.get("key"):
        if not (tls.get("certificate") and tls.get("key")):
            raise ConfigError("http.tls: both certificate and key are required")
        out["tls_certificate"] = _str(tls["certificate"], "http.tls.certificate")
        out["tls_key"] = _str(tls["key"], "http.tls.key")
    return out


def _parse_auth(raw: Any) -> dict[str, Any]:
    auth = _section(raw, "auth")
    _check_keys(auth, "auth", {"htpasswd"})
    if "htpasswd" not in auth:
        return {}
    sec = _section(auth["htpasswd"], "auth.htpasswd")
    _check_keys(sec, "auth.htpasswd", {"realm", "path"})
    if not sec.get("path"):
        raise ConfigError("auth.htpasswd.path: required (a file of user:bcrypt-hash lines)")
    realm = _str(sec.get("realm", "basic-realm"), "auth.htpasswd.realm")
    return {"htpasswd": Htpasswd(realm, _str(sec["path"], "auth.htpasswd.path"))}


def _parse_log(raw: Any, top_level: Any) -> str:
    sec = _section(raw, "log")
    _check_keys(sec, "log", {"level"})
    level = sec.get("level", top_level if top_level is not None else "info")
    name = _LOG_LEVELS.get(_str(level, "log.level").lower())
    if name is None:
        raise ConfigError(f"log.level: expected one of {sorted(_LOG_LEVELS)}, got {level!r}")
    return name


def parse_config(raw: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None) -> Config:
    """Validate a decoded YAML document (``None`` = no file) with env overrides applied."""
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(f"config: expected a mapping at the top level, got {type(raw).__name__}")
    doc = apply_env(dict(raw or {}), environ or {})
    _check_keys(doc, "", {"storage", "http", "log", "auth"})
    values: dict[str, Any] = {}
    values.update(_parse_storage(doc.get("storage")))
    values.update(_parse_http(doc.get("http")))
    values.update(_parse_auth(doc.get("auth")))
    values["log_level"] = _parse_log(doc.get("log"), doc.get("loglevel"))
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
