from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.natsserver import NatsServer, free_port, wait_until

REPO = Path(__file__).resolve().parent.parent


# Folders whose tests run longest go first: under xdist (make test) the short unit and
# integration tests then fill the workers' tails instead of one slow test ending alone.
FIRST = ("crash", "faults", "process", "conformance", "inproc", "integration")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        parts = item.path.relative_to(REPO).parts
        folder = parts[1] if len(parts) > 2 and parts[0] == "tests" else ""
        return FIRST.index(folder) if folder in FIRST else len(FIRST)

    items.sort(key=rank)  # stable: the order within a folder is kept


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


def naqd_executable() -> str:
    return str(Path(sys.executable).parent / "naqd")


class Daemon:
    """The real `naqd` as a subprocess, its output in a log file the test can poll."""

    def __init__(
        self, config_path: Path, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.extra_env = env or {}
        self.metrics_url = ""  # http://host:port of /metrics, when the test set one
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        env = {**os.environ, "PYTHONPATH": str(REPO), **self.extra_env}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [naqd_executable(), "--config", str(self.config_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.config_path.parent,
            env=env,
        )
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, count: int = 1, timeout: float = 20.0) -> None:
        def seen() -> bool:
            if self.log.count(text) >= count:
                return True
            # naqd ended on its own (not killed by a test: its children may still write):
            # nothing more will come, so say so now rather than at the deadline.
            code = self.proc.poll() if self.proc is not None else None
            if code is not None and code >= 0:
                if self.log.count(text) >= count:  # written just before it exited
                    return True
                raise AssertionError(f"naqd exited with {code} before {text!r}")
            return False

        try:
            wait_until(seen, timeout, what=f"log {text!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the log ends:\n{self.tail()}") from None

    def tail(self, lines: int = 60) -> str:
        """The log's last lines, for a failure message: CI keeps nothing else."""
        return "\n".join(self.log.splitlines()[-lines:])

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and not self._log.closed:
            self._log.close()


@pytest.fixture
def daemon_factory(tmp_path: Path, nats_server: NatsServer) -> Iterator:
    daemons: list[Daemon] = []

    def make(
        yaml_body: str,
        ready_workers: int | None = None,
        name: str = "naq",
        env: dict[str, str] | None = None,
    ) -> Daemon:
        config = tmp_path / f"{name}.yaml"
        body = f"nats:\n  servers: [{nats_server.url}]\n" + textwrap.dedent(yaml_body)
        metrics_port = None
        if "metrics:" not in body:  # never the shared default port: tests run in parallel
            metrics_port = free_port()
            body = body.rstrip() + f'\nmetrics: {{listen: "127.0.0.1:{metrics_port}"}}\n'
        config.write_text(body)
        daemon = Daemon(config, tmp_path / f"{name}.log", env)
        if metrics_port:
            daemon.metrics_url = f"http://127.0.0.1:{metrics_port}"
        daemon.start()
        daemons.append(daemon)
        if ready_workers:
            daemon.wait_for_log("ready: queue", count=ready_workers)
        return daemon

    yield make
    for d in daemons:
        d.stop()
