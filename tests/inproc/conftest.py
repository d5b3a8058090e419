"""Job behaviour tests against a real nats-server and the daemon's worker code run
in-process (naqd.testing.Worker), without the cost of booting a daemon. Tests of
signals, supervision, reload, systemd and faults stay in tests/process and tests/faults.

The worker runs on an event loop in a thread of its own (tests/workerthread.py), so the
tests stay plain synchronous code, as they were against the daemon."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.natsserver import NatsServer
from tests.workerthread import WorkerThread


@pytest.fixture
def worker_factory(
    tmp_path: Path, nats_server: NatsServer
) -> Iterator[Callable[..., WorkerThread]]:
    """`worker_factory(yaml_body, name="naq")`: an in-process worker serving the queues of
    a naq.yaml body (as `daemon_factory` takes), pulling by the time it returns."""
    workers: list[WorkerThread] = []

    def make(yaml_body: str, name: str = "naq") -> WorkerThread:
        config = tmp_path / f"{name}.yaml"
        config.write_text(textwrap.dedent(yaml_body))
        worker = WorkerThread(config, nats_server.url, tmp_path / f"{name}.log")
        workers.append(worker)
        return worker.start()

    yield make
    for w in workers:
        w.stop()
