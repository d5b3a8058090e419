"""Real nats-server processes for tests: one server or a 3-node cluster, free loopback
ports, temporary store directories."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from naqd.supervisor.embedded import nats_server_binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


class NatsServer:
    """`config` is extra nats-server configuration (accounts, authorization, tls ...),
    written to a file next to the store; listen address and JetStream stay ours."""

    def __init__(self, store_dir: Path, port: int | None = None, config: str | None = None):
        self.store_dir = store_dir
        self.port = port or free_port()
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        extra: list[str] = []
        if self.config is not None:
            path = self.store_dir.parent / f"nats-{self.port}.conf"
            path.write_text(self.config)
            extra = ["-c", str(path)]
        self.proc = subprocess.Popen(
            [
                nats_server_binary(),
                *extra,
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-sd",
                str(self.store_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._ready, timeout=15, what=f"nats-server on {self.port}")
        return self

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                return s.recv(4).startswith(b"INFO")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
