"""The ASGI application: routing, authentication, error responses, upload purging, scrub, gc.

Routes (``<name>`` may hold slashes, so the route regex anchors on the trailing keywords)::

    GET           /v2/                                     API version check
    GET           /v2/_catalog                             repositories (n, last, Link)
    GET           /v2/<name>/tags/list                     tags (n, last, Link)
    GET HEAD PUT DELETE /v2/<name>/manifests/<reference>   manifests by tag or digest
    GET           /v2/<name>/referrers/<digest>            manifests whose subject is <digest>
    POST          /v2/<name>/blobs/uploads/                start / monolithic / mount
    GET PATCH PUT DELETE /v2/<name>/blobs/uploads/<id>     status / chunk / finish / cancel
    GET HEAD DELETE /v2/<name>/blobs/<digest>              blobs
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import random
import re
from collections.abc import Awaitable, Callable

from .. import discovery
from ..driver import StorageDriver
from ..gc import GCBusyError
from ..gc.stats import TOTALS as GC_TOTALS
from ..ops.scrub import scrub_once
from ..proxy import Proxy
from ..proxy.expiry import expiry_loop
from ..registry import Registry
from ..registry.cache import FALLBACKS
from ..registry.errors import NameUnknownError, UnauthorizedError, UnsupportedError
from ..registry.leases import KeepAlive, fleet_lease
from ..registry.names import NAME_PATTERN
from . import access, blobs, manifests, metrics, uploads
from .accesslog import access_logged
from .auth import Htpasswd, HtpasswdError
from .config import Config, ConfigError
from .debug import DebugServer
from .errors import from_exception
from .fleet import blob_cache, redis_client, run_leased
from .health import StorageHealth
from .http import (
    ClientDisconnected,
    Message,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    empty,
    error_response,
    json_response,
    send_response,
)
from .instrument import Consumer, instrumented, set_user
from .notifications import Notifier
from .state import ServerState
from .tokenauth import TokenAuthenticator
from .tokens import TokenSigner, random_secret

log = logging.getLogger(__name__)

#: What the dispatcher calls: a route with its URL arguments bound (mypy checks each binding).
Call = Callable[[ServerState, Request], Awaitable[Response]]
#: Routes under ``/v2/<name>/`` taking one more URL argument (reference, upload id, digest).
_NamedRoute = Callable[[ServerState, Request, str, str], Awaitable[Response]]


@dataclasses.dataclass(frozen=True)
class Route:
    """A routed request: which handler (authorization asks), its repository, and the call."""

    handler: object
    call: Call
    name: str | None = None

_ROUTE = re.compile(
    r"^/v2/(?P<name>.+?)/(?:"
    r"(?P<tags>tags/list)"
    r"|manifests/(?P<reference>[^/]+)"
    r"|referrers/(?P<subject>[^/]+)"
    r"|blobs/uploads/(?P<upload>[^/]*)"
    r"|blobs/(?P<digest>[^/]+)"
    r")$"
)

_MANIFEST_METHODS: dict[str, _NamedRoute] = {
    "GET": manifests.get, "HEAD": manifests.get, "PUT": manifests.put,
    "DELETE": manifests.delete,
}
_UPLOAD_METHODS: dict[str, _NamedRoute] = {
    "GET": uploads.status, "PATCH": uploads.patch, "PUT": uploads.put,
    "DELETE": uploads.cancel,
}
_BLOB_METHODS: dict[str, _NamedRoute] = {
    "GET": blobs.get, "HEAD": blobs.head, "DELETE": blobs.delete,
}


def _not_allowed(method: str) -> UnsupportedError:
    return UnsupportedError(f"method {method} not allowed here")


async def _version(state: ServerState, req: Request) -> Response:
    return json_response(200, b"{}")


def route(method: str, path: str) -> Route:
    """Find the handler and bind its URL arguments (404/405 as OCI errors)."""
    if path in ("/v2", "/v2/"):
        if method not in ("GET", "HEAD"):
            raise _not_allowed(method)
        return Route(_version, _version)
    if path == "/v2/_catalog":
        if method != "GET":
            raise _not_allowed(method)
        return Route(manifests.catalog, manifests.catalog)
    if path.endswith("/blobs/uploads"):  # some clients drop the trailing slash
        path += "/"
    m = _ROUTE.match(path)
    if m is None:
        raise NameUnknownError("no such route", detail={"path": path})
    name: str = m.group("name")
    if m.group("tags"):
        if method != "GET":
            raise _not_allowed(method)
        return Route(manifests.tags, lambda state, req: manifests.tags(state, req, name), name)
    if m.group("subject") is not None:
        if method != "GET":
            raise _not_allowed(method)
        return _bind({"GET": manifests.referrers}, method, name, m.group("subject"))
    if m.group("reference") is not None:
        return _bind(_MANIFEST_METHODS, method, name, m.group("reference"))
    if m.group("upload") is not None:
        upload_id: str = m.group("upload")
        if not upload_id:
            if method != "POST":
                raise _not_allowed(method)
            return Route(uploads.start, lambda state, req: uploads.start(state, req, name), name)
        return _bind(_UPLOAD_METHODS, method, name, upload_id)
    return _bind(_BLOB_METHODS, method, name, m.group("digest"))


_UPLOAD_HANDLERS = frozenset({uploads.start, *_UPLOAD_METHODS.values()})


def required_scopes(method: str, routed: Route) -> list[access.Scope]:
    """The token scopes a routed request needs, as Distribution asks for them.

    ``pull`` to read (GET/HEAD of blobs, manifests, tags, referrers), ``pull,push`` to write
    (every upload request, manifest PUT), ``delete`` to delete, ``registry:catalog:*`` for the
    catalog; the version check needs a valid token and nothing more.
    """
    if routed.handler is manifests.catalog:
        return [access.CATALOG]
    name = routed.name
    if name is None:
        return []
    if routed.handler in _UPLOAD_HANDLERS or method in ("PUT", "POST", "PATCH"):
        return [access.repository(name, access.PULL, access.PUSH)]
    if method == "DELETE":
        return [access.repository(name, access.DELETE)]
    return [access.repository(name, access.PULL)]


def route_name(path: str) -> str:
    """Distribution's name for the route ``path`` falls under: the label metrics and logs use."""
    if path == "/":
        return "root"
    if path in ("/v2", "/v2/"):
        return "base"
    if path == "/v2/_catalog":
        return "catalog"
    m = _ROUTE.match(path + "/" if path.endswith("/blobs/uploads") else path)
    if m is None:
        return "unknown"
    if m.group("tags"):
        return "tags"
    if m.group("reference") is not None:
        return "manifest"
    if m.group("subject") is not None:
        return "referrers"
    if m.group("upload") is not None:
        return "blob_upload_chunk" if m.group("upload") else "blob_upload"
    return "blob"



def _bind(table: dict[str, _NamedRoute], method: str, name: str, arg: str) -> Route:
    handler = table.get(method)
    if handler is None:
        raise _not_allowed(method)
    return Route(handler, lambda state, req: handler(state, req, name, arg), name)


class RegistryApp:
    """The ASGI callable; one per process."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._tasks: list[asyncio.Task[None]] = []
        #: Who sees each finished request (the access log, webhook notifications).
        self.consumers: list[Consumer] = []
        #: The ``health.storagedriver`` check, when enabled (``serve`` starts it).
        self.health: StorageHealth | None = None
        self.debug: DebugServer | None = None
        self.notifier: Notifier | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            below = self.state.config.urls.below_prefix(scope["path"])
            if below is not None and below != scope["path"]:  # http.prefix: route what is below
                scope = {**scope, "path": below, "prefixed_path": scope["path"]}
            name = route_name(scope["path"]) if below is not None else "unknown"
            await instrumented(scope, receive, send, self._serve, name, self.consumers)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.state.config.headers]
        if extra:  # http.headers, on every response
            plain_send = send

            async def send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), *extra]
                await plain_send(message)
        if scope.get("prefixed_path", scope["path"]) == "/":  # Distribution's load-balancer
            await send_response(send, empty(200))              # probe: always 200, no auth
            return
        if self.state.config.urls.below_prefix(scope.get("prefixed_path", scope["path"])) is None:
            await send_response(send, error_response(NameUnknownError(
                "no such route (the API is under http.prefix)", detail={"path": scope["path"]})))
            return
        if self.health is not None and not self.health.healthy:  # as Distribution: all 503
            await send_response(send, self.health.unavailable())
            return
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
        if req.body_unread:  # answered before the body (401, 404, ...): never read it, close
            resp.header("Connection", "close")
        try:
            await send_response(send, resp)
        except OSError:
            log.info("%s %s: client went away during the response", req.method, req.path)

    async def _dispatch(self, req: Request) -> Response:
        if self.state.htpasswd is not None:
            await self._authenticate(req)
        routed = route(req.method, req.path)
        if self.state.token_auth is not None:
            await self._authorize(req, routed)
        if self.state.config.readonly and req.method not in ("GET", "HEAD"):
            await req.drain()
            raise UnsupportedError("the registry is in read-only mode")
        proxy = self.state.proxy
        if proxy is not None and req.method not in ("GET", "HEAD") and routed.name is not None \
                and not proxy.allows_write(routed.name):
            await req.drain()
            raise UnsupportedError("this registry is a pull-through cache: "
                                   f"{routed.name} takes no pushes (proxy.allowpush, "
                                   "unclaimed names)")
        return await routed.call(self.state, req)

    async def _authorize(self, req: Request, routed: Route) -> None:
        """Check the bearer token against the scopes the request needs (token auth).

        A name outside the grammar is refused first, so no such text reaches a challenge. A
        mount whose source the token may not pull is dropped: the handler then starts a plain
        upload (202), so no blob is ever linked from a repository the client cannot read.
        """
        token_auth = self.state.token_auth
        assert token_auth is not None
        if routed.name is not None:
            self.state.registry.repository(routed.name)  # NAME_INVALID before any challenge
        scopes = required_scopes(req.method, routed)
        source = req.arg("from") if routed.handler is uploads.start and req.arg("mount") else None
        optional = []
        if source is not None and NAME_PATTERN.fullmatch(source) and source != routed.name:
            optional = [access.repository(source, access.PULL)]
        try:
            realm = (self.state.config.urls.absolute(req, token_auth.config.autoredirectpath,
                                                     "https")
                     if token_auth.config.autoredirect else None)
            grants = await self.state.run(token_auth.authorize, req.headers, scopes, optional,
                                          realm)
        except Exception:
            await req.drain()
            raise
        if grants.subject:
            set_user(req.scope, grants.subject)
        if optional and not grants.allows(optional[0]):
            req.query.pop("mount", None)
            req.query.pop("from", None)

    async def _authenticate(self, req: Request) -> None:
        htpasswd = self.state.htpasswd
        assert htpasswd is not None
        user = await self.state.run(htpasswd.check, req.headers.get("authorization"))
        if user is None:  # answered as soon as the headers are in; the body is never read
            raise UnauthorizedError(headers={"WWW-Authenticate": htpasswd.challenge})
        set_user(req.scope, user)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                purge = self.state.config.purge
                if purge.enabled and purge.interval > 0 and not self.state.config.readonly:
                    self._tasks.append(asyncio.create_task(self._purge_loop()))
                if self.state.config.scrub.enabled:
                    self._tasks.append(asyncio.create_task(self._scrub_loop()))
                if self.state.proxy is not None and not self.state.config.readonly:
                    self._tasks.append(asyncio.create_task(expiry_loop(
                        self.state.registry, self.state.proxy.config, self.state.run,
                        self._collect_once)))
                gc = self.state.config.gc
                if gc.enabled and gc.interval > 0 and not self.state.config.readonly:
                    self._tasks.append(asyncio.create_task(self._gc_loop()))
                self._start_ops()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self._tasks:
                    task.cancel()
                if self.debug is not None:
                    self.debug.stop()
                if self.notifier is not None:
                    self.notifier.close()
                if self.state.proxy is not None:
                    self.state.proxy.close()
                self.state.executor.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _start_ops(self) -> None:
        """Start the health check and the debug server (``health``, ``http.debug``)."""
        if self.health is not None:
            self._tasks.append(asyncio.create_task(self.health.run(self.state.run)))
        if self.state.config.debug is not None:
            self.debug = DebugServer(self.state.config.debug, self.health).start()
        if metrics.multiprocess_dir() is not None:  # a worker: the supervisor serves metrics
            self._tasks.append(asyncio.create_task(metrics.sync_snapshots()))

    async def _purge_loop(self) -> None:
        purge = self.state.config.purge
        # Distribution waits a random part of an hour first, so a fleet does not purge at once.
        await asyncio.sleep(min(purge.interval, random.uniform(60, 3600)))
        while True:
            try:
                found = await self.state.run(
                    run_leased, self.state.registry.driver, self.state.redis, "uploadpurge",
                    lambda lease: self.state.registry.purge_uploads(
                        dt.timedelta(seconds=purge.age), purge.dryrun, lease=lease),
                )
                if found is not None:
                    log.info("upload purge: %d upload(s)%s", len(found),
                             " (dry run)" if purge.dryrun else "")
            except Exception:
                log.exception("upload purge failed")
            await asyncio.sleep(purge.interval)


    async def _scrub_loop(self) -> None:
        """Verify the whole store every interval, at the configured read rate.

        The first run waits a random part of the interval, so that a fleet's instances spread;
        the fleet lease ``scrub`` lets one instance (or worker) scrub at a time.
        """
        scrub, driver = self.state.config.scrub, self.state.registry.driver
        await asyncio.sleep(random.uniform(0, scrub.interval))
        while True:
            await self.state.run(
                run_leased, driver, self.state.redis, "scrub",
                lambda lease: scrub_once(driver, scrub.ratelimit or None, self.state.scrub,
                                         KeepAlive(lease)),
            )
            await asyncio.sleep(scrub.interval)

    async def _gc_loop(self) -> None:
        """Collect garbage every interval; with a fleet, whoever holds the lease collects."""
        gc = self.state.config.gc
        await asyncio.sleep(min(gc.interval, random.uniform(60, 3600)))
        while True:
            await self._collect_once()
            await asyncio.sleep(gc.interval)

    async def _collect_once(self) -> bool:
        """One gc run, with ``storage.maintenance.gc``'s settings and the fleet's gc lease.

        The scheduled gc's, and the proxy expiry's follow-up; returns whether it ran.
        """
        config = self.state.config
        gc = config.gc
        try:
            report = await self.state.run(
                self.state.registry.collect_garbage,
                delete_untagged=gc.deleteuntagged,
                grace=dt.timedelta(seconds=gc.grace),
                dry_run=gc.dryrun,
                retention=config.retention,
                purge_uploads_older_than=None,  # uploadpurging has its own schedule
                lease=fleet_lease(self.state.registry.driver, self.state.redis, "gc",
                                  strict=True),
            )
            self.state.gc.finished(report)
            log.info("gc: %s", report.summary())
            return True
        except GCBusyError as exc:
            self.state.gc.skipped()
            log.info("gc skipped: %s", exc)
        except Exception:
            self.state.gc.failed()
            log.exception("gc failed")
        return False


def _chunk_min_length(driver: StorageDriver, default: int) -> int:
    """The driver's preferred chunk size, which clients are asked to send whole."""
    return driver.preferred_chunk_size or default


def _export_counters(state: ServerState) -> None:
    """The scrub's, the gc's, the proxy's and the blob cache's counters, on the metrics endpoint."""
    metrics.export_snapshot("scrub", state.scrub.snapshot, totals=(
        "runs", "failed_runs", "blobs_checked", "bytes_checked", "problems_found"))
    metrics.export_snapshot("gc", state.gc.snapshot, totals=GC_TOTALS)
    metrics.export_snapshot("cache", lambda: {"fallbacks": FALLBACKS.count}, totals=("fallbacks",))
    proxy = state.proxy
    if proxy is not None:
        snapshot = proxy.stats.snapshot
        metrics.export_snapshot("proxy", snapshot, totals=tuple(snapshot()))


def create_app(config: Config, driver: StorageDriver | None = None) -> RegistryApp:
    """Build the driver (unless given), the registry and the app from a validated config.

    An htpasswd file, root certificate bundle or JWKS that cannot be read is a ConfigError,
    like any other bad setting.
    """
    metrics.install()
    if driver is None:
        driver = discovery.load_driver(config.driver, **dict(config.driver_params))
    secret = config.secret
    if not secret:
        secret = random_secret()
        log.warning(
            "http.secret is not set: uploads in progress will not survive a restart "
            "(set it, the same on every instance, to run several)"
        )
    htpasswd = token_auth = None
    if config.token is not None:
        token_auth = TokenAuthenticator(config.token)
    if config.htpasswd is not None:
        try:
            htpasswd = Htpasswd(config.htpasswd.path, config.htpasswd.realm)
        except HtpasswdError as exc:
            raise ConfigError(str(exc)) from None
    client = redis_client(config)
    registry = Registry(driver, blob_cache(config, client), url_policy=config.url_policy)
    state = ServerState(config=config, registry=registry,
                        signer=TokenSigner(secret), htpasswd=htpasswd, token_auth=token_auth,
                        redis=client)
    state.chunk_min_length = _chunk_min_length(driver, state.chunk_min_length)
    if config.proxy is not None:
        state.proxy = Proxy(config.proxy, state.registry, state.run)
    _export_counters(state)
    app = RegistryApp(state)
    if not config.accesslog_disabled:
        app.consumers.append(access_logged)
    if config.notifications:
        app.notifier = Notifier(config.notifications, config.urls)
        app.consumers.append(app.notifier)
    health = config.health
    if health.enabled:
        app.health = StorageHealth(driver, health.interval, health.threshold)
    return app
