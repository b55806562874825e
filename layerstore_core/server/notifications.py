"""Webhook notifications (``notifications.endpoints``): Distribution's event envelope.

Each finished request that pushed, pulled, mounted or deleted something becomes one event
(``application/vnd.docker.distribution.events.v1+json``: ``{"events": [event]}`` with
``target``, ``request``, ``actor``, ``source``), built from the request's record and queued for
every endpoint. Each endpoint has a bounded in-process queue and one delivery thread with an
httpx client, so a slow or dead endpoint never slows or fails a request: when its queue is full
new events are dropped (counted in ``layerstore_notifications_deliveries_total{outcome=dropped}``).
A failed delivery is retried; after ``threshold`` failures in a row the thread waits ``backoff``
between tries (Distribution's retrying sink). Queued events are lost on restart, as in
Distribution.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import queue
import socket
import threading
import uuid
from typing import Any
from urllib.parse import parse_qs

import httpx

from .metrics import NOTIFICATIONS, RequestRecord
from .urls import DEFAULT_URLS, URLConfig

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
QUEUE_LIMIT = 10_000
#: The pause between the first ``threshold`` retries (then ``backoff``).
FIRST_RETRY_DELAY = 0.1
INSTANCE_ID = str(uuid.uuid4())


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One ``notifications.endpoints`` entry."""

    name: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 1.0
    threshold: int = 10
    backoff: float = 1.0
    ignored_mediatypes: frozenset[str] = frozenset()
    ignored_actions: frozenset[str] = frozenset()


def _header(record: RequestRecord, name: str, response: bool) -> str | None:
    pairs = record.response_headers if response else record.scope.get("headers", [])
    want = name.lower().encode("latin-1")
    return next((v.decode("latin-1") for k, v in pairs if k.lower() == want), None)


def _action(record: RequestRecord) -> str | None:
    """push, pull, mount or delete; None for requests that are none of them."""
    route, method, status = record.route, record.method, record.status
    if route == "manifest":
        return {("PUT", 201): "push", ("GET", 200): "pull",
                ("DELETE", 202): "delete"}.get((method, status))
    if route == "blob":
        return {("GET", 200): "pull", ("DELETE", 202): "delete"}.get((method, status))
    if route in ("blob_upload", "blob_upload_chunk") and status == 201:
        query = record.scope.get("query_string", b"").decode("latin-1")
        return "mount" if route == "blob_upload" and "mount=" in query else "push"
    return None


def event_for(record: RequestRecord, host: str,
              urls: URLConfig = DEFAULT_URLS) -> dict[str, Any] | None:
    """Distribution's event for a finished request, or None when it is not one.

    The target's ``url`` is built as the request's ``Location`` would be (``server/urls.py``).
    """
    action = _action(record)
    if action is None:
        return None
    parts = record.path.split("/")
    repository = record.path[len("/v2/"):].rsplit("/manifests/" if record.route == "manifest"
                                                  else "/blobs/", 1)[0]
    digest = _header(record, "docker-content-digest", True) or ""
    target: dict[str, Any] = {"repository": repository, "digest": digest}
    if record.route == "manifest":
        media = (_header(record, "content-type", action == "pull")
                 if action != "delete" else None)
        reference = parts[-1]
        if ":" not in reference:
            target["tag"] = reference
        elif not digest:
            target["digest"] = reference
        size = record.bytes_in if action == "push" else record.bytes_out
    else:
        media = "application/octet-stream"
        if action == "delete":
            target["digest"] = parts[-1]
        size = record.bytes_out if action == "pull" else record.bytes_in
        if action == "mount":
            query = parse_qs(record.scope.get("query_string", b"").decode("latin-1"))
            target["fromRepository"] = query.get("from", [""])[0]
    if media:
        target["mediaType"] = media
    if action in ("push", "pull") and size:
        target["size"] = target["length"] = size
    kind = "manifests" if record.route == "manifest" else "blobs"
    path = f"/v2/{repository}/{kind}/{target['digest']}"
    target["url"] = urls.for_scope(dict(record.scope), path)
    client = record.scope.get("client")
    return {
        "id": str(uuid.uuid4()),
        "timestamp": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        "action": action,
        "target": target,
        "request": {"id": record.id, "addr": f"{client[0]}:{client[1]}" if client else "",
                    "host": host, "method": record.method,
                    "useragent": _header(record, "user-agent", False) or ""},
        "actor": {"name": record.user} if record.user else {},
        "source": {"addr": f"{socket.gethostname()}", "instanceID": INSTANCE_ID},
    }


class _Sink:
    """One endpoint's queue and delivery thread."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_LIMIT)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"notify-{endpoint.name}",
                                        daemon=True)
        self._thread.start()

    def offer(self, event: dict[str, Any]) -> None:
        target = event["target"]
        if event["action"] in self.endpoint.ignored_actions or \
                target.get("mediaType") in self.endpoint.ignored_mediatypes:
            return
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            NOTIFICATIONS.labels(self.endpoint.name, "dropped").inc()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):  # wake the thread if it waits for an event
            self.queue.put_nowait(None)
        self._thread.join(5)

    def _run(self) -> None:
        ep = self.endpoint
        headers = {"Content-Type": MEDIA_TYPE, **dict(ep.headers)}
        with httpx.Client(timeout=ep.timeout, headers=headers) as client:
            while not self._stop.is_set():
                event = self.queue.get()
                if event is None:
                    return
                self._deliver(client, json.dumps({"events": [event]}).encode())

    def _deliver(self, client: httpx.Client, body: bytes) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                status = client.post(self.endpoint.url, content=body).status_code
                error = None if 200 <= status < 300 else f"HTTP {status}"
            except httpx.RequestError as exc:  # every failure to get an answer
                error = f"{type(exc).__name__}: {exc}"
            if error is None:
                NOTIFICATIONS.labels(self.endpoint.name, "delivered").inc()
                return
            failures += 1
            NOTIFICATIONS.labels(self.endpoint.name, "failed").inc()
            if failures == self.endpoint.threshold:
                log.warning("notifications endpoint %s failing (%s): backing off %.1fs",
                            self.endpoint.name, error, self.endpoint.backoff)
            delay = (self.endpoint.backoff if failures >= self.endpoint.threshold
                     else FIRST_RETRY_DELAY)
            self._stop.wait(delay)


class Notifier:
    """The consumer that turns finished requests into events for every endpoint."""

    def __init__(self, endpoints: tuple[Endpoint, ...], urls: URLConfig = DEFAULT_URLS) -> None:
        self.sinks = [_Sink(ep) for ep in endpoints]
        self.urls = urls

    def __call__(self, record: RequestRecord) -> None:
        host = _header(record, "host", False) or ""
        event = event_for(record, host, self.urls)
        if event is not None:
            for sink in self.sinks:
                sink.offer(event)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def parse_endpoints(raw: Any) -> tuple[Endpoint, ...]:
    """``notifications`` → the enabled endpoints (a ConfigError names a bad key)."""
    from . import config as c  # config imports this module when it parses ``notifications``

    sec = c._section(raw, "notifications")
    c._check_keys(sec, "notifications", {"endpoints"})
    items = sec.get("endpoints") or []
    if not isinstance(items, list):
        raise c.ConfigError(f"notifications.endpoints: expected a list, got {items!r}")
    out = []
    for i, item in enumerate(items):
        key = f"notifications.endpoints[{i}]"
        ep = c._section(item, key)
        c._check_keys(ep, key, {"name", "url", "headers", "timeout", "threshold", "backoff",
                                "ignoredmediatypes", "ignore", "disabled"})
        if c._bool(ep.get("disabled", False), f"{key}.disabled"):
            continue
        if not ep.get("name") or not str(ep.get("url", "")).startswith(("http://", "https://")):
            raise c.ConfigError(f"{key}: name and an http(s) url are required")
        heads = c._section(ep.get("headers"), f"{key}.headers")
        ignore = c._section(ep.get("ignore"), f"{key}.ignore")
        c._check_keys(ignore, f"{key}.ignore", {"mediatypes", "actions"})
        threshold = ep.get("threshold", 10)
        if isinstance(threshold, bool) or not str(threshold).isdigit():
            raise c.ConfigError(f"{key}.threshold: expected an integer >= 0, got {threshold!r}")
        media = c._str_list(ep.get("ignoredmediatypes"), f"{key}.ignoredmediatypes") + \
            c._str_list(ignore.get("mediatypes"), f"{key}.ignore.mediatypes")
        out.append(Endpoint(
            name=c._str(ep["name"], f"{key}.name"), url=c._str(ep["url"], f"{key}.url"),
            headers=tuple((str(h), v) for h, vs in heads.items()
                          for v in c._str_list(vs, f"{key}.headers.{h}")),
            timeout=c.parse_duration(ep.get("timeout", "1s"), f"{key}.timeout") or 1.0,
            threshold=max(int(str(threshold)), 1),
            backoff=c.parse_duration(ep.get("backoff", "1s"), f"{key}.backoff"),
            ignored_mediatypes=frozenset(media),
            ignored_actions=frozenset(c._str_list(ignore.get("actions"),
                                                  f"{key}.ignore.actions")),
        ))
    return tuple(out)
