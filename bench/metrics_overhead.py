"""What metrics and the access log cost: per storage call, and per HTTP request.

Storage: CPU per ``stat`` on the inmemory driver with no observers (the baseline, same run) and
with the Prometheus observer installed. HTTP: wall time per ``GET /v2/`` against a threaded
server with the access log and metrics, and with both consumers removed (metrics at the ASGI
layer stay; their cost is in the first figure's order). Prints microseconds and ratios.

    python -P bench/metrics_overhead.py [--calls 200000] [--requests 3000]
"""

from __future__ import annotations

import argparse
import logging
import time

import httpx

from layerstore_core import observe
from layerstore_core.drivers.inmemory import InMemoryDriver
from layerstore_core.server import Config, metrics
from layerstore_core.server.threaded import ThreadedServer


def stat_cpu(calls: int) -> float:
    driver = InMemoryDriver()
    driver.put_content("/a/b", b"x")
    start = time.process_time()
    for _ in range(calls):
        driver.stat("/a/b")
    return (time.process_time() - start) / calls * 1e6


def http_wall(requests: int, consumers: bool) -> float:
    cfg = Config(driver="inmemory", driver_params={}, secret="s")
    with ThreadedServer(cfg, InMemoryDriver()) as srv, httpx.Client(base_url=srv.url) as c:
        if not consumers:
            srv.app.consumers.clear()
        for _ in range(200):
            c.get("/v2/")
        start = time.perf_counter()
        for _ in range(requests):
            c.get("/v2/")
        return (time.perf_counter() - start) / requests * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, handlers=[logging.NullHandler()])
    observe._storage.clear()  # noqa: SLF001 - the baseline: no observer at all
    bare = stat_cpu(args.calls)
    metrics.install()
    timed = stat_cpu(args.calls)
    print(f"stat, no observer:        {bare:6.2f} us CPU")
    print(f"stat, Prometheus timing:  {timed:6.2f} us CPU  (x{timed / bare:.2f})")
    rounds = [(http_wall(args.requests, False), http_wall(args.requests, True))
              for _ in range(3)]  # alternating, best of 3: a loaded machine's drift cancels
    without, with_log = min(r[0] for r in rounds), min(r[1] for r in rounds)
    print(f"GET /v2/, no consumers:   {without:6.1f} us wall")
    print(f"GET /v2/, access log:     {with_log:6.1f} us wall  (x{with_log / without:.2f})")


if __name__ == "__main__":
    main()
