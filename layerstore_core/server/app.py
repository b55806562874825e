"""The ASGI application: routing, authentication, error responses, upload purging and gc.

Routes (``<name>`` may hold slashes, so the route regex anchors on the trailing keywords)::

    GET           /v2/                                     API version check
    GET           /v2/_catalog                             repositories (n, last, Link)
    GET           /v2/<name>/tags/list                     tags (n, last, Link)
    GET HEAD PUT DELETE /v2/<name>/manifests/<reference>   manifests by tag or digest
    POST          /v2/<name>/blobs/uploads/                start / monolithic / mount
    GET PATCH PUT DELETE /v2/<name>/blobs/uploads/<id>     status / chunk / finish / cancel
    GET HEAD DELETE /v2/<name>/blobs/<digest>              blobs
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import re
from collections.abc import Awaitable, Callable

from .. import discovery
from ..driver import StorageDriver
from ..gc import GCBusyError
from ..registry import Registry
from . import blobs, manifests, uploads
from .auth import Htpasswd, HtpasswdError
from .config import Config, ConfigError
from .errors import HTTPError, from_exception
from .http import (
    ClientDisconnected,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    error_response,
    json_response,
    send_response,
)
from .state import ServerState
from .tokens import TokenSigner, random_secret

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[Response]]

_ROUTE = re.compile(
    r"^/v2/(?P<name>.+?)/(?:"
    r"(?P<tags>tags/list)"
    r"|manifests/(?P<reference>[^/]+)"
    r"|blobs/uploads/(?P<upload>[^/]*)"
    r"|blobs/(?P<digest>[^/]+)"
    r")$"
)

_MANIFEST_METHODS: dict[str, Handler] = {
    "GET": manifests.get, "HEAD": manifests.get, "PUT": manifests.put,
    "DELETE": manifests.delete,
}
_UPLOAD_METHODS: dict[str, Handler] = {
    "GET": uploads.status, "PATCH": uploads.patch, "PUT": uploads.put,
    "DELETE": uploads.cancel,
}
_BLOB_METHODS: dict[str, Handler] = {"GET": blobs.get, "HEAD": blobs.head, "DELETE": blobs.delete}


def _not_allowed(method: str) -> HTTPError:
    return HTTPError("UNSUPPORTED", f"method {method} not allowed here")


async def _version(state: ServerState, req: Request) -> Response:
    return json_response(200, b"{}")


def route(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    """Find the handler and its URL arguments (404/405 as OCI errors)."""
    if path in ("/v2", "/v2/"):
        if method not in ("GET", "HEAD"):
            raise _not_allowed(method)
        return _version, {}
    if path == "/v2/_catalog":
        if method != "GET":
            raise _not_allowed(method)
        return manifests.catalog, {}
    if path.endswith("/blobs/uploads"):  # some clients drop the trailing slash
        path += "/"
    m = _ROUTE.match(path)
    if m is None:
        raise HTTPError("NAME_UNKNOWN", "no such route", detail={"path": path}, status=404)
    name = m.group("name")
    if m.group("tags"):
        if method != "GET":
            raise _not_allowed(method)
        return manifests.tags, {"name": name}
    if m.group("reference") is not None:
        return _pick(_MANIFEST_METHODS, method), {"name": name, "reference": m.group("reference")}
    if m.group("upload") is not None:
        upload_id = m.group("upload")
        if not upload_id:
            if method != "POST":
                raise _not_allowed(method)
            return uploads.start, {"name": name}
        return _pick(_UPLOAD_METHODS, method), {"name": name, "upload_id": upload_id}
    return _pick(_BLOB_METHODS, method), {"name": name, "digest": m.group("digest")}


def _pick(table: dict[str, Handler], method: str) -> Handler:
    handler = table.get(method)
    if handler is None:
        raise _not_allowed(method)
    return handler


class RegistryApp:
    """The ASGI callable; one per process."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._purger: asyncio.Task[None] | None = None
        self._collector: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(Request(scope, receive), send)

    async def _http(self, req: Request, send: Send) -> None:
        head = req.method == "HEAD"
        try:
            resp = await self._dispatch(req)
        except ClientDisconnected:
            log.info("%s %s: client disconnected mid-body", req.method, req.path)
            return
        except Exception as exc:
            err = from_exception(exc)
            if err.status >= 500:
                log.error("%s %s failed: %s", req.method, req.path, err.message)
            resp = error_response(err, head=head)
        try:
            await send_response(send, resp)
        except OSError:
            log.info("%s %s: client went away during the response", req.method, req.path)

    async def _dispatch(self, req: Request) -> Response:
        if self.state.htpasswd is not None:
            await self._authenticate(req)
        handler, args = route(req.method, req.path)
        return await handler(self.state, req, **args)

    async def _authenticate(self, req: Request) -> None:
        htpasswd = self.state.htpasswd
        assert htpasswd is not None
        user = await self.state.run(htpasswd.check, req.headers.get("authorization"))
        if user is None:
            await req.drain()
            raise HTTPError("UNAUTHORIZED", headers={"WWW-Authenticate": htpasswd.challenge})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                purge = self.state.config.purge
                if purge.enabled and purge.interval > 0:
                    self._purger = asyncio.create_task(self._purge_loop())
                gc = self.state.config.gc
                if gc.enabled and gc.interval > 0:
                    self._collector = asyncio.create_task(self._gc_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in (self._purger, self._collector):
                    if task is not None:
                        task.cancel()
                self.state.executor.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _purge_loop(self) -> None:
        purge = self.state.config.purge
        # Distribution waits a random part of an hour first, so a fleet does not purge at once.
        await asyncio.sleep(min(purge.interval, random.uniform(60, 3600)))
        while True:
            try:
                found = await self.state.run(
                    self.state.registry.purge_uploads,
                    older_than=dt.timedelta(seconds=purge.age),
                    dry_run=purge.dryrun,
                )
                log.info("upload purge: %d upload(s)%s", len(found),
                         " (dry run)" if purge.dryrun else "")
            except Exception:
                log.exception("upload purge failed")
            await asyncio.sleep(purge.interval)


    async def _gc_loop(self) -> None:
        """Collect garbage every interval; with a fleet, whoever holds the lease collects."""
        config = self.state.config
        gc = config.gc
        await asyncio.sleep(min(gc.interval, random.uniform(60, 3600)))
        while True:
            try:
                report = await self.state.run(
                    self.state.registry.collect_garbage,
                    delete_untagged=gc.deleteuntagged,
                    grace=dt.timedelta(seconds=gc.grace),
                    dry_run=gc.dryrun,
                    retention=config.retention,
                    purge_uploads_older_than=None,  # uploadpurging has its own schedule
                )
                log.info("gc: %s", report.summary())
            except GCBusyError as exc:
                log.info("gc skipped: %s", exc)
            except Exception:
                log.exception("gc failed")
            await asyncio.sleep(gc.interval)


def _chunk_min_length(driver: StorageDriver, default: int) -> int:
    """The driver's preferred chunk size, which clients are asked to send whole."""
    return driver.preferred_chunk_size or default


def create_app(config: Config, driver: StorageDriver | None = None) -> RegistryApp:
    """Build the driver (unless given), the registry and the app from a validated config.

    An htpasswd file that cannot be read is a ConfigError, like any other bad setting.
    """
    if driver is None:
        driver = discovery.load_driver(config.driver, **dict(config.driver_params))
    secret = config.secret
    if not secret:
        secret = random_secret()
        log.warning(
            "http.secret is not set: using a random secret, so uploads in progress will not "
            "survive a restart and cannot be continued by a second instance"
        )
    htpasswd = None
    if config.htpasswd is not None:
        try:
            htpasswd = Htpasswd(config.htpasswd.path, config.htpasswd.realm)
        except HtpasswdError as exc:
            raise ConfigError(str(exc)) from None
    state = ServerState(config=config, registry=Registry(driver), signer=TokenSigner(secret),
                        htpasswd=htpasswd)
    state.chunk_min_length = _chunk_min_length(driver, state.chunk_min_length)
    return RegistryApp(state)
