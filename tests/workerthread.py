"""The in-process worker (naqd.testing.Worker) on an event loop in a thread of its own,
so tests written as plain synchronous code (SyncClient, wait_until, the CLI in a
subprocess) run against it as they would against a daemon."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from loguru import logger

from naqd.testing import Worker
from tests.natsserver import wait_until


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
        # Only this worker's loop thread: several workers may share the process.
        self._sink = logger.add(
            self.log_path,
            level="DEBUG",
            filter=lambda record: record["thread"].id == self.thread.ident,
        )
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
