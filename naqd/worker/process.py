"""A worker child: its own uvloop loop and NATS connection, one queue, drained on SIGTERM
or when the supervisor disappears."""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import signal
import sys
import time

from loguru import logger

from naqd.config import Config
from naqd.connection import connect_daemon
from naqd.logs import setup_logging
from naqd.protocol.resources import ensure_resources
from naqd.worker.priority import make_puller
from naqd.worker.runner import Runner

EXIT_BOOT_ERROR = 3


def main(config: Config, queue: str, index: int) -> None:
    """Entry point of a spawned worker process."""
    setup_logging(config.logging, role="worker", queue=queue)
    # Ctrl-C reaches the whole process group; the supervisor decides, children obey SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        loop_factory = None
    for module in config.tasks.imports:
        try:
            importlib.import_module(module)
        except Exception:
            logger.exception("cannot import task module {!r}", module)
            sys.exit(EXIT_BOOT_ERROR)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        code = runner.run(WorkerProcess(config, queue, index).run())
    sys.exit(code)


class WorkerProcess:
    def __init__(self, config: Config, queue: str, index: int) -> None:
        self.config = config
        self.queue = config.queues[queue]
        self.index = index
        self.stop = asyncio.Event()
        self.hurry = asyncio.Event()

    def _on_term(self) -> None:
        if self.stop.is_set():
            logger.warning("second stop signal: finishing now")
            self.hurry.set()
        else:
            logger.info("stop requested: draining")
            self.stop.set()

    def _watch_parent(self, loop: asyncio.AbstractEventLoop) -> None:
        parent = multiprocessing.parent_process()
        if parent is None:
            return

        def on_parent_gone() -> None:
            loop.remove_reader(parent.sentinel)
            logger.warning("supervisor is gone: draining")
            self.stop.set()

        loop.add_reader(parent.sentinel, on_parent_gone)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_term)
        self._watch_parent(loop)
        nc = await connect_daemon(self.config.nats.urls, role=f"worker-{self.queue.name}")
        await ensure_resources(nc.jetstream(), self.config)
        runner = Runner(nc, self.config, self.queue)
        puller = make_puller(nc, self.queue, runner)
        runner.on_slot_free = puller.request
        await runner.control.start()
        keep_alive = loop.create_task(runner.keep_alive())
        await puller.start()
        logger.info(
            "worker {} ready: queue {} concurrency {}",
            self.index,
            self.queue.name,
            self.queue.concurrency,
        )
        await self.stop.wait()
        deadline = time.monotonic() + self.config.shutdown.grace_period
        runner.draining = True  # from here on, a delivered job is nak'ed at once
        await puller.stop()
        await runner.drain(deadline, self.hurry)
        keep_alive.cancel()
        await runner.control.stop()
        try:
            await asyncio.wait_for(nc.drain(), timeout=5)
        except Exception as exc:
            logger.warning("closing NATS connection: {}", exc)
        logger.info("worker stopped: {} done, {} failed", runner.done, runner.failed)
        return 0
