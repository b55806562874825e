"""Real Redis Sentinel and Redis Cluster deployments on loopback, for the fleet's tests.

Both come from Debian's ``redis-server`` alone: a Sentinel is ``redis-server <conf> --sentinel``
and a Cluster is ``--cluster-enabled yes`` nodes joined by ``redis-cli --cluster create``. Each
waits (bounded) until it serves and fails loudly with the logs' tails when it does not.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis

from tests.backends._servers import free_port

START_TIMEOUT_S = 60.0
MASTER_NAME = "layerstore"


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too, as a cluster node needs."""
    for _ in range(200):
        port = random.randrange(20000, 55535)
        try:
            for p in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class _Node:
    """One ``redis-server`` process (data node or sentinel) with its log."""

    def __init__(self, workdir: Path, name: str, args: Sequence[str], port: int = 0) -> None:
        assert shutil.which("redis-server"), "apt-get install redis-server: it is required"
        self.port = port or free_port()
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / "redis.log"
        self.args = [a.replace("@PORT@", str(self.port)) for a in args]
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = redis.Redis(port=self.port, socket_timeout=5)

    def start(self) -> _Node:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                ["redis-server", *self.args, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no"],
                cwd=self.dir, stdout=out, stderr=subprocess.STDOUT)
        wait_for(self._answers, f"redis-server on port {self.port}", [self])
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited: {tail(self.log)}")
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-1500:] if log.exists() else "(no log)"


def wait_for(ready: Callable[[], bool], what: str, nodes: Sequence[_Node],
             timeout: float = START_TIMEOUT_S) -> None:
    """Poll ``ready`` until true; on timeout fail with every node's log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    logs = "\n".join(f"--- {n.log}\n{tail(n.log)}" for n in nodes)
    raise RuntimeError(f"{what}: not ready after {timeout:.0f} s\n{logs}")


class SentinelSet:
    """A master, one replica and one Sentinel (quorum 1) that fails over within seconds."""

    def __init__(self, workdir: Path) -> None:
        self.master = _Node(workdir, "master", [])
        self.replica = _Node(workdir, "replica", [])
        self.sentinel = _Node(workdir, "sentinel", ["sentinel.conf", "--sentinel"])
        self.nodes = [self.master, self.replica, self.sentinel]

    def start(self) -> SentinelSet:
        try:
            self.master.start()
            self.replica.args = ["--replicaof", "127.0.0.1", str(self.master.port)]
            self.replica.start()
            wait_for(lambda: self._info(self.replica).get("master_link_status") == "up",
                     "the replica's link to the master", self.nodes)
            (self.sentinel.dir / "sentinel.conf").write_text(
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} 1\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                f"sentinel failover-timeout {MASTER_NAME} 10000\n")
            self.sentinel.start()
            wait_for(lambda: bool(self.sentinel.client.sentinel_slaves(MASTER_NAME)),
                     "the sentinel's view of the replica", self.nodes)
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def _info(node: _Node) -> dict[str, object]:
        info: dict[str, object] = node.client.info("replication")
        return info

    def master_port(self) -> int:
        host, port = self.sentinel.client.sentinel_get_master_addr_by_name(MASTER_NAME)
        return int(port)

    def failover(self) -> None:
        """Promote the replica (``SENTINEL FAILOVER``) and wait until the old master follows it."""
        old = self.master_port()

        def started() -> bool:  # NOGOODSLAVE until the sentinel has the replica's INFO
            try:
                self.sentinel.client.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
            except redis.ResponseError as exc:
                if "NOGOODSLAVE" in str(exc):
                    return False
                raise
            return True

        wait_for(started, "a failover the sentinel accepts", self.nodes)
        new_master = self.replica if old == self.master.port else self.master
        old_master = self.master if new_master is self.replica else self.replica
        wait_for(lambda: self.master_port() == new_master.port
                 and self._info(new_master)["role"] == "master"
                 and self._info(old_master).get("master_link_status") == "up",
                 "the failover", self.nodes)

    def current_master(self) -> _Node:
        return self.master if self.master_port() == self.master.port else self.replica

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


class ClusterSet:
    """Three master nodes, no replicas, all 16384 slots covered."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        assert shutil.which("redis-cli"), "apt-get install redis-tools: redis-cli is required"
        self.nodes = [_Node(workdir, f"node{i}", [
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "2000"], _cluster_port()) for i in range(size)]
        self.log = workdir / "cluster-create.log"

    def start(self) -> ClusterSet:
        try:
            for node in self.nodes:
                node.start()
            with self.log.open("wb") as out:
                created = subprocess.run(
                    ["redis-cli", "--cluster", "create", *(n.addr for n in self.nodes),
                     "--cluster-replicas", "0", "--cluster-yes"],
                    stdout=out, stderr=subprocess.STDOUT, timeout=START_TIMEOUT_S, check=False)
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {tail(self.log)}")
            wait_for(self._ok, "the cluster's state", self.nodes)
        except BaseException:
            self.stop()
            raise
        return self

    def _ok(self) -> bool:
        return all(b"cluster_state:ok" in n.client.execute_command("CLUSTER", "INFO")
                   for n in self.nodes)

    @property
    def addrs(self) -> list[str]:
        return [n.addr for n in self.nodes]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
