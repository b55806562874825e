"""Run the app under uvicorn with the config's address, TLS and log level.

uvicorn is the server because it streams both ways through plain ASGI (flow-controlled request
bodies, no buffering of responses), uses httptools and uvloop when present (the ``server``
extra installs them), and handles TLS and Unix sockets itself.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import ssl
from typing import Any

import uvicorn

from . import tlspolicy, workers
from .app import RegistryApp, create_app
from .config import DEFAULT_ROOT, Config, ConfigError
from .guard import protocol_for
from .logsetup import setup_logging
from .memory import tune_malloc
from .probe import check_storage

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


def uvicorn_config(app: RegistryApp | str, config: Config, **options: Any) -> uvicorn.Config:
    """The uvicorn settings from ours: the guarded protocol, keep-alive and drain timeouts.

    With ``http.workers`` > 1, ``app`` is the workers' app factory and the protocol is named by
    import string, as each worker builds its own (see :mod:`.workers`).
    """
    return uvicorn.Config(
        app,
        http=(protocol_for(config.limits) if config.workers == 1  # type: ignore[arg-type]  # a BufferedProtocol works; the stub says Protocol
              else workers.PROTOCOL),
        factory=config.workers > 1,
        workers=config.workers,
        timeout_keep_alive=config.limits.keepalive_timeout,  # type: ignore[arg-type]  # a float works; the stub says int
        # uvicorn times out a zero wait before it even looks: 0.1 s is "at once" without the
        # spurious "graceful shutdown exceeded" error on every stop
        timeout_graceful_shutdown=max(config.drain_timeout, 0.1),  # type: ignore[arg-type]  # likewise
        log_config=None,
        lifespan="on",
        server_header=False,
        **options,
    )


def storage_location(config: Config) -> str:
    """Where the data lives, for the startup line: an absolute path, a bucket, a container."""
    params = config.driver_params
    if config.driver == "filesystem":
        return os.path.abspath(str(params.get("rootdirectory", DEFAULT_ROOT)))
    if config.driver == "inmemory":
        return "in process memory"
    found = [f"{k} {params[k]}" for k in ("bucket", "container", "rootdirectory")
             if params.get(k)]
    return ", ".join(found) or "the driver's default location"


def listen(config: Config) -> socket.socket:
    """Bind ``http.addr`` now, so an address in use is an error that names the key."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    try:
        return socket.create_server((config.host, config.port), family=family, backlog=2048)
    except OSError as exc:
        raise ConfigError(
            f"http.addr: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}"
        ) from None


def serve(config: Config) -> None:
    """Serve until SIGTERM/SIGINT (then drain for ``http.draintimeout``).

    An unreadable htpasswd file or TLS key pair, unusable storage or an address in use is a
    ConfigError, found before the first connection is accepted.
    """
    setup_logging(config.log_level, config.log_formatter, config.log_fields)
    redact_upload_state()
    tune_malloc()
    app = create_app(config)
    check_storage(app.state.registry.driver, config.driver)
    sock = None if config.unix_socket else listen(config)
    scheme = "https" if config.tls_certificate else "http"
    where = config.unix_socket or f"{scheme}://{config.host}:{config.port}"
    log.info("layerstore serving %s storage (%s) on %s", config.driver,
             storage_location(config), where)
    if config.workers > 1:
        workers.export_config(config)
    server_config = uvicorn_config(
        app if config.workers == 1 else workers.APP, config,
        uds=config.unix_socket,
        ssl_certfile=config.tls_certificate,
        ssl_keyfile=config.tls_key,
        log_level=config.log_level.lower(),
        access_log=False,  # ours (accesslog.py) redacts the upload state token
    )
    try:
        if config.workers == 1:
            server_config.load()  # builds the TLS context now, so a bad pair is a config error
        elif config.tls_certificate:  # the workers load the app; the parent checks the pair
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
                config.tls_certificate, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"http.tls: cannot load the certificate and key: {exc}") from None
    if config.workers > 1 and (config.tls_clientcas or config.tls_ciphersuites
                               or config.tls_minimum != "tls1.2"):
        raise ConfigError("http.tls: clientcas, minimumtls and ciphersuites are not applied "
                          "by http.workers > 1 yet; run one worker per process")
    if config.workers == 1 and server_config.ssl is not None:
        try:
            tlspolicy.apply(server_config.ssl, config.tls_minimum, config.tls_ciphersuites,
                            config.tls_clientcas)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"http.tls: cannot apply clientcas/ciphersuites: {exc}") from None
    if config.workers > 1:
        log.info("layerstore starting %d workers", config.workers)
        workers.serve_supervised(config, app, server_config, sock)
        return
    uvicorn.Server(server_config).run(sockets=None if sock is None else [sock])
