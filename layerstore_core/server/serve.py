"""Run the app under uvicorn with the config's address, TLS and log level.

uvicorn is the server because it streams both ways through plain ASGI (flow-controlled request
bodies, no buffering of responses), uses httptools and uvloop when present (the ``server``
extra installs them), and handles TLS and Unix sockets itself.
"""

from __future__ import annotations

import logging
import re
import ssl

import uvicorn

from .app import create_app
from .config import Config, ConfigError
from .memory import tune_malloc

log = logging.getLogger(__name__)

#: The signed upload state in a logged URL: it lets whoever holds it continue the upload.
_UPLOAD_STATE = re.compile(r"(_state=)[^&\s\"']+")
#: uvicorn's loggers that print request lines (URLs with their query).
URL_LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    """``…?_state=<token>`` → ``…?_state=REDACTED``."""
    return _UPLOAD_STATE.sub(r"\1REDACTED", text)


class RedactUploadState(logging.Filter):
    """Rewrites log records so that no upload state token reaches a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    redact_upload_state()


def redact_upload_state() -> None:
    """Install :class:`RedactUploadState` on the loggers that print URLs (once each)."""
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactUploadState) for f in logger.filters):
            logger.addFilter(RedactUploadState())


def serve(config: Config) -> None:
    """Serve until interrupted; an unreadable htpasswd file or TLS key pair is a ConfigError."""
    configure_logging(config.log_level)
    tune_malloc()
    app = create_app(config)
    where = config.unix_socket or f"{config.host}:{config.port}"
    log.info("layerstore serving %s storage on %s", config.driver, where)
    server_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        uds=config.unix_socket,
        ssl_certfile=config.tls_certificate,
        ssl_keyfile=config.tls_key,
        log_level=config.log_level.lower(),
        log_config=None,
        access_log=config.log_level == "DEBUG",
        lifespan="on",
        server_header=False,
        timeout_keep_alive=30,
    )
    try:
        server_config.load()  # builds the TLS context now, so a bad pair is a config error
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"http.tls: cannot load the certificate and key: {exc}") from None
    uvicorn.Server(server_config).run()
