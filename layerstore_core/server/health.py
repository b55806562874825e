"""Distribution's ``health.storagedriver`` check, and the debug server's ``/debug/health``.

Every ``interval`` the check stats the storage root (a missing root is healthy: a new store);
after ``threshold`` failures in a row (at least one) the registry is unhealthy until one check
passes. While unhealthy, ``/debug/health`` answers 503 with the failing check and, as
Distribution does, every registry request answers 503 ``UNAVAILABLE`` (``GET /`` stays 200).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from ..driver import StorageDriver
from ..errors import PathNotFoundError
from .http import Response, json_response

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 10.0

RunBlocking = Callable[[Callable[[], None]], Awaitable[None]]


class StorageHealth:
    """The periodic storage-driver check; ``healthy`` is read from any thread."""

    def __init__(self, driver: StorageDriver, interval: float = DEFAULT_INTERVAL,
                 threshold: int = 0) -> None:
        self.driver = driver
        self.interval = interval
        self.threshold = max(threshold, 1)
        self.failures = 0
        self.last_error: str | None = None

    @property
    def name(self) -> str:
        return f"storagedriver_{self.driver.name}"

    @property
    def healthy(self) -> bool:
        return self.failures < self.threshold

    def check_once(self) -> None:
        """Stat the root once and record the outcome (never raises)."""
        try:
            self.driver.stat("/")
        except PathNotFoundError:
            pass
        except Exception as exc:  # any failure is what the check reports
            was_healthy = self.healthy
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            if was_healthy and not self.healthy:
                log.error("health check %s failing: %s", self.name, self.last_error)
            return
        if not self.healthy:
            log.warning("health check %s passes again", self.name)
        self.failures, self.last_error = 0, None

    async def run(self, run_blocking: RunBlocking) -> None:
        """Check every ``interval`` seconds, forever (cancel to stop)."""
        while True:
            await run_blocking(self.check_once)
            await asyncio.sleep(self.interval)

    def status(self) -> dict[str, str]:
        """Distribution's ``/debug/health`` document: the failing checks and their errors."""
        return {} if self.healthy else {self.name: self.last_error or "failing"}

    def unavailable(self) -> Response:
        """The 503 every registry request gets while unhealthy."""
        body = {"errors": [{"code": "UNAVAILABLE", "message": "service unavailable",
                            "detail": "health check failed: please see /debug/health"}]}
        return json_response(503, json.dumps(body).encode())
