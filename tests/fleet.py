"""A fleet for tests and bench/fleet.py: redis-server, N ``layerstore serve`` and nginx in front.

nginx runs the configuration from ``deploy/nginx-fleet.conf`` (rendered as
``deploy/run-fleet.sh`` renders it), inside a minimal main config of its own. Every server
writes to a log file and fails loudly with its tail when it cannot start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.backends._servers import free_port
from tests.images import RegistryProcess, write_config

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
START_TIMEOUT_S = 30.0


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"


class RedisServer:
    """``redis-server`` on a free loopback port, without persistence; stop and start again."""

    def __init__(self, workdir: Path) -> None:
        assert shutil.which("redis-server"), "apt-get install redis-server: it is required"
        self.port = free_port()
        self.log = workdir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = redis.Redis(port=self.port, socket_timeout=5)

    def start(self) -> RedisServer:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no"], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {_tail(self.log)}")
            try:
                if self.client.ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer: {_tail(self.log)}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"


def render_nginx(workdir: Path, listen: int, upstreams: Sequence[int]) -> Path:
    """Write nginx.conf around deploy/nginx-fleet.conf for these ports; return its path."""
    nginx_dir = workdir / "nginx"
    nginx_dir.mkdir(parents=True, exist_ok=True)
    servers = " ".join(f"server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;" for p in upstreams)
    site = (DEPLOY / "nginx-fleet.conf").read_text()
    site = site.replace("@LISTEN@", f"127.0.0.1:{listen}").replace("@UPSTREAMS@", servers)
    (nginx_dir / "fleet.conf").write_text(site)
    user = "user root;\n" if os.geteuid() == 0 else ""
    (nginx_dir / "nginx.conf").write_text(
        f"{user}daemon off;\npid {nginx_dir}/nginx.pid;\nerror_log {nginx_dir}/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        f"http {{\n access_log {nginx_dir}/access.log;\n"
        f" client_body_temp_path {nginx_dir}/body;\n proxy_temp_path {nginx_dir}/proxy;\n"
        f" include {nginx_dir}/fleet.conf;\n}}\n")
    return nginx_dir


class Nginx:
    """nginx in the foreground with the rendered fleet config."""

    def __init__(self, workdir: Path, upstreams: Sequence[int]) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        assert os.path.exists(nginx), "nginx is required (apt-get install nginx)"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = render_nginx(workdir, self.port, upstreams)
        self.log = self.dir / "error.log"
        self.proc = subprocess.Popen(
            [nginx, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")],
            stdout=subprocess.DEVNULL, stderr=(self.dir / "stderr.log").open("wb"))
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {_tail(self.dir / 'stderr.log')}"
                                   f"{_tail(self.log)}")
            try:
                if httpx.get(self.url + "/v2/", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"nginx did not answer: {_tail(self.log)}")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Fleet:
    """Instances sharing one backend (and Redis, when given) behind nginx."""

    def __init__(self, workdir: Path, driver: str, params: Mapping[str, Any], size: int = 3,
                 redis_addr: str | None = None, workers: int = 1,
                 extra: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        overlay: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (extra or {}).items()}
        if redis_addr is not None:
            overlay.setdefault("storage", {})["cache"] = {"blobdescriptor": "redis"}
            overlay["redis"] = {"addr": redis_addr, "dialtimeout": "200ms",
                              "readtimeout": "500ms", "writetimeout": "500ms"}
        if workers > 1:
            overlay.setdefault("http", {})["workers"] = workers
        self.instances: list[RegistryProcess] = []
        try:
            for i in range(size):
                port = free_port()
                cfg = write_config(workdir / f"config{i}.yml", driver, params, port, overlay)
                self.instances.append(RegistryProcess.layerstore(cfg, port,
                                                                 workdir / f"serve{i}.log"))
            for instance in self.instances:
                instance.wait_ready(60)
            self.nginx = Nginx(workdir, [i.port for i in self.instances])
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if hasattr(self, "nginx"):
            self.nginx.stop()
        for instance in self.instances:
            instance.stop()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def established(port: int) -> int:
    """How many established TCP connections have local port ``port`` (from /proc/net/tcp)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count
