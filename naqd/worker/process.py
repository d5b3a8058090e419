"""A worker child: its own uvloop loop and NATS connection, one queue, drained on SIGTERM
or when the supervisor disappears."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import sys
import time

from loguru import logger

from naqd.client.errors import NatsAuthError
from naqd.config import Config
from naqd.logs import setup_logging
from naqd.observe.heartbeat import Heartbeat
from naqd.orphan import watch_parent
from naqd.protocol.resources import ensure_or_refuse
from naqd.protocol.signing import keyring_from_config
from naqd.transport.cancelling import cancel_and_wait
from naqd.transport.connection import connect_daemon
from naqd.worker.deadletter import AdvisoryMover
from naqd.worker.priority import PriorityPuller, make_puller
from naqd.worker.puller import Puller
from naqd.worker.runner import Runner

# Exit codes the supervisor acts on (naqd/supervisor/policy.py): 0 is a planned exit
# (drained or recycled), 78 (EX_CONFIG) a boot failure that a restart cannot fix.
EXIT_OK = 0
EXIT_CONFIG = 78


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
    try:
        keyring_from_config(config.tasks)  # read the key file now: a bad one is fatal
    except ValueError as exc:
        logger.error("{}", exc)
        sys.exit(EXIT_CONFIG)
    for module in config.tasks.imports:
        try:
            importlib.import_module(module)
        except BaseException as exc:
            logger.opt(exception=exc).critical(
                "cannot import task module {!r} (tasks.imports in {}): {}: {}",
                module,
                config.path,
                type(exc).__name__,
                exc,
            )
            sys.exit(EXIT_CONFIG)
    worker = WorkerProcess(config, queue, index)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        code = runner.run(worker.run())
    if worker.threads_busy:
        # A thread stuck in a task would keep the interpreter from exiting: leave now.
        logger.warning("exiting with a task thread still running")
        logger.complete()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


class WorkerProcess:
    def __init__(self, config: Config, queue: str, index: int) -> None:
        self.config = config
        self.queue = config.queues[queue]
        self.index = index
        self.stop = asyncio.Event()
        self.hurry = asyncio.Event()
        self.threads_busy = False

    def _on_term(self) -> None:
        if self.stop.is_set():
            logger.warning("second stop signal: finishing now")
            self.hurry.set()
        else:
            logger.info("stop requested: draining")
            self.stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_term)
        watch_parent(loop, self.stop)
        beat = Heartbeat(
            self.config,
            "worker",
            queues=(self.queue.name,),
            index=self.index,
            concurrency=self.queue.concurrency,
        )
        beat.start()
        puller: Puller | PriorityPuller | None = None

        async def on_reconnect() -> None:
            if puller is not None:
                await puller.reset()  # pull requests are server state, lost on reconnect

        connecting = loop.create_task(
            connect_daemon(
                self.config.nats.urls,
                role=f"worker-{self.queue.name}",
                nats_config=self.config.nats,
                on_reconnect=on_reconnect,
                trusted_subjects=True,
            )
        )
        stopping = loop.create_task(self.stop.wait())
        await asyncio.wait([connecting, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not connecting.done():
            # Stopped while NATS was unreachable: nothing is held, nothing to hand back.
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
            logger.info("worker stopped before it could reach NATS")
            return EXIT_OK
        try:
            nc = connecting.result()
        except NatsAuthError as exc:
            logger.error("{}", exc)
            return EXIT_CONFIG
        if not await ensure_or_refuse(nc.jetstream(), self.config):
            await nc.close()
            return EXIT_CONFIG
        runner = Runner(nc, self.config, self.queue)
        puller = make_puller(nc, self.queue, runner)
        runner.on_slot_free = puller.slot_freed
        await runner.start()
        keep_alive = loop.create_task(runner.keep_alive())
        mover = loop.create_task(AdvisoryMover(nc, self.config, runner.worker).run())
        await puller.start()
        # Worker 0 of each queue reports the queue's depth from consumer info.
        beat.attach(nc, runner.observe, depth_queue=self.queue.name if self.index == 0 else None)
        logger.info(
            "worker {} ready: queue {} concurrency {}",
            self.index,
            self.queue.name,
            self.queue.concurrency,
        )
        recycle = loop.create_task(runner.recycle.wait())
        await asyncio.wait([stopping, recycle], return_when=asyncio.FIRST_COMPLETED)
        deadline = time.monotonic() + self.config.shutdown.grace_period
        runner.draining = True  # from here on, a delivered job is nak'ed at once
        await puller.stop()
        await cancel_and_wait([mover])
        await runner.drain(deadline, self.hurry)
        await cancel_and_wait([keep_alive])
        await runner.stop()
        await beat.stop()
        self.threads_busy = runner.threads.threads_busy
        try:
            # Every ack and nak is written by now: flush proves the server has them.
            await nc.flush(timeout=5)
        except Exception as exc:
            logger.warning("flushing NATS connection: {}", exc)
        try:
            await asyncio.wait_for(nc.close(), 5.0)  # never hang the exit
        except Exception as exc:
            logger.warning("closing NATS connection: {}", exc)
        logger.info(
            "worker {}: {} done, {} failed",
            "recycled" if recycle.done() and not self.stop.is_set() else "stopped",
            runner.done,
            runner.failed,
        )
        return EXIT_OK
