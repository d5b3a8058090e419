"""Job behaviour tests against a real nats-server and the daemon's worker code run
in-process (naqd.testing.Worker), without the cost of booting a daemon. Tests of
signals, supervision, reload, systemd and faults stay in tests/process and tests/faults.

The worker runs on an event loop in a thread of its own, so the tests stay plain
synchronous code (SyncClient, wait_until, the CLI in a subprocess), as they were
against the daemon."""

from __future__ import annotations

import asyncio
import textwrap
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from naqd.testing import Worker
from tests.natsserver import NatsServer, wait_until


class WorkerThread:
    """A naqd.testing.Worker on its own loop in a thread; `log` holds what it logged."""

    def __init__(self, config: Path, url: str, log_path: Path) -> None:
        self.worker = Worker(url, config=config)
        self.log_path = log_path
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="inproc-worker", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._sink: int | None = None
        self.stopped = False

    def start(self) -> WorkerThread:
        self._sink = logger.add(self.log_path, level="DEBUG", enqueue=False)
        self.thread.start()
        if not self._ready.wait(30):
            raise AssertionError("the in-process worker did not start within 30 s")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.worker.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            self.loop.close()
            return
        self._ready.set()
        self.loop.run_forever()
        try:
            self.loop.run_until_complete(self.worker.stop())
        finally:
            self.loop.close()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def drain(self, timeout: float = 20) -> None:
        self.call(self.worker.drain(timeout), timeout + 10)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, count: int = 1, timeout: float = 20.0) -> None:
        wait_until(lambda: self.log.count(text) >= count, timeout, what=f"log {text!r}")

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(60)
        if self._sink is not None:
            logger.remove(self._sink)


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
