"""Logging for ``layerstore serve``: ``log.formatter`` (text or json), ``log.fields``, held lines.

Lines logged before the config is known (the config's own warnings) are held by :func:`hold` and
written by :func:`setup_logging` in the configured format, with their original timestamps. Every
line carries ``log.fields``; a record's ``fields`` extra (the access log's) is added to it: in
text as ``key=value`` pairs, in json as keys of the line's object.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATTERS = ("text", "json")

_held: list[logging.LogRecord] = []


class _Holder(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        _held.append(record)


_HOLDER = _Holder()


def hold() -> None:
    """Keep every line from now until :func:`setup_logging` (which writes them)."""
    root = logging.getLogger()
    if _HOLDER not in root.handlers:
        root.addHandler(_HOLDER)
    root.setLevel(logging.DEBUG)


def _fields(record: logging.LogRecord, static: Mapping[str, Any]) -> dict[str, Any]:
    extra = getattr(record, "fields", None)
    return {**static, **(extra if isinstance(extra, Mapping) else {})}


def _quote(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n')) else text


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value …``."""

    def __init__(self, fields: Mapping[str, Any]) -> None:
        super().__init__(TEXT_FORMAT)
        self.static = dict(fields)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        pairs = " ".join(f"{k}={_quote(v)}" for k, v in _fields(record, self.static).items())
        return f"{line} {pairs}" if pairs else line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time``, ``level``, ``logger``, ``msg``, the fields, ``error``."""

    def __init__(self, fields: Mapping[str, Any]) -> None:
        super().__init__()
        self.static = dict(fields)

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_fields(record, self.static))
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class _ExplainInvalidRequest(logging.Filter):
    """Say what uvicorn's bare "Invalid HTTP request received." usually means."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() == "Invalid HTTP request received.":
            record.msg = ("Invalid HTTP request received: the bytes were not HTTP/1.x, most often "
                          "a client trying TLS on this plain-HTTP address (have it use http://, "
                          "or set http.tls); answered 400 and closed")
            record.args = ()
        return True


def setup_logging(level: str, formatter: str = "text",
                  fields: Mapping[str, Any] | None = None) -> None:
    """Configure the root logger, then write what :func:`hold` kept at or above ``level``."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(fields or {}) if formatter == "json"
                         else TextFormatter(fields or {}))
    logging.basicConfig(level=level, handlers=[handler], force=True)  # also drops the holder
    uvicorn_error = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _ExplainInvalidRequest) for f in uvicorn_error.filters):
        uvicorn_error.addFilter(_ExplainInvalidRequest())
    threshold = logging.getLevelName(level)
    held, _held[:] = list(_held), []
    for record in held:
        if record.levelno >= threshold:
            handler.handle(record)
