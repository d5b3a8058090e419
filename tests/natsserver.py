"""Real nats-server processes for tests: one server or a 3-node cluster, free loopback
ports, temporary store directories."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from naqd.serverbin import free_port, is_ready, nats_server_binary
from naqd.testing.server import NatsServer

__all__ = ["NatsCluster", "NatsServer", "free_port", "wait_until"]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll with a deadline: the only way tests wait for something to happen."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class NatsCluster:
    """Three JetStream nodes on loopback routes
    (docs/jetstream.md#a-three-node-cluster-on-loopback); a node can be
    killed and started again on its own ports and store."""

    def __init__(self, base: Path, size: int = 3) -> None:
        self.base = base
        self.client_ports = [free_port() for _ in range(size)]
        self.route_ports = [free_port() for _ in range(size)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{p}" for p in self.client_ports]

    def _config(self, i: int) -> Path:
        routes = ", ".join(f"nats://127.0.0.1:{p}" for p in self.route_ports)
        path = self.base / f"n{i}.conf"
        path.write_text(
            f"""
server_name: n{i}
listen: 127.0.0.1:{self.client_ports[i]}
jetstream {{ store_dir: "{self.base / f"n{i}"}", max_memory_store: 256MB, max_file_store: 1GB }}
cluster {{ name: C1, listen: 127.0.0.1:{self.route_ports[i]}, routes: [{routes}] }}
"""
        )
        return path

    def start_node(self, i: int) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.procs[i] = subprocess.Popen(
            [nats_server_binary(), "-c", str(self._config(i))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> NatsCluster:
        for i in range(len(self.procs)):
            self.start_node(i)
        for port in self.client_ports:
            wait_until(lambda port=port: _ready(port), 15, what=f"node on {port}")
        return self

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def node_of(self, server_name: str) -> int:
        return int(server_name.removeprefix("n"))

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)


def _ready(port: int) -> bool:
    return is_ready("127.0.0.1", port)
