"""A worker child: the WorkerCore of one queue, or one per queue of a pool
(worker/core.py), on its own connection, booted by the shared child boot
(naqd/child/boot.py); drained on SIGTERM, when the supervisor disappears, or when the
process should be recycled."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from typing import NoReturn

from loguru import logger
from nats.aio.client import Client as NATS

from naqd.child import boot, middleware
from naqd.config import Config
from naqd.exitcodes import EXIT_CONFIG, EXIT_OK, EXIT_RECYCLED
from naqd.middleware import Hooks
from naqd.observe.heartbeat import Heartbeat
from naqd.protocol.signing import keyring_from_config
from naqd.worker.core import WorkerCores
from naqd.worker.idle import wait_idle


def main(config: Config, name: str, index: int) -> None:
    """Entry point of a spawned worker process: `name` is a queue, or a pool of queues."""
    boot.main(WorkerProcess(config, name, index), queue=name)


def burst_main(config: Config, name: str, index: int) -> None:
    """Entry point of a worker in burst mode (`naqd run --burst`): it exits with EXIT_OK
    once every configured queue is idle; a recycle exits with EXIT_RECYCLED instead."""
    boot.main(WorkerProcess(config, name, index, burst=True), queue=name)


def import_tasks(config: Config) -> int | None:
    """Read the signing key and import `tasks.imports` before serving: a failure here is
    a configuration error (EXIT_CONFIG), reported once, never a restart loop."""
    try:
        keyring_from_config(config.tasks)  # read the key file now: a bad one is fatal
    except ValueError as exc:
        logger.error("{}", exc)
        return EXIT_CONFIG
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
            return EXIT_CONFIG
    return None


class WorkerProcess(boot.Child):
    role = "worker"
    trusted_subjects = True

    def __init__(self, config: Config, name: str, index: int, burst: bool = False) -> None:
        super().__init__(config)
        self.name = name
        self.pool = config.pools.get(name)  # None: the process of one queue
        self.queues = config.served_by(name)
        self.index = index
        self.burst = burst
        self.cores: WorkerCores | None = None
        self.threads_busy = False
        self.hooks: Hooks | None = None  # naq.yaml's middleware

    def prepare(self) -> int | None:
        code = import_tasks(self.config)
        if code is None:
            self.hooks, code = middleware.load(self.config)
        return code

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(
            self.config,
            "worker",
            queues=tuple(q.name for q in self.queues),
            index=self.index,
            concurrency=sum(q.concurrency for q in self.queues),
            pool=self.pool.name if self.pool is not None else "",
            slots={q.name: q.concurrency for q in self.queues},
        )

    def connection_role(self) -> str:
        kind = "pool" if self.pool is not None else "worker"
        return f"{kind}-{self.name}"

    async def on_reconnect(self) -> None:
        if self.cores is not None:
            await self.cores.reset()

    async def serve(self, nc: NATS, beat: Heartbeat) -> int:
        loop = asyncio.get_running_loop()
        cores = self.cores = WorkerCores(
            nc, self.config, self.queues, pool=self.pool, hooks=self.hooks
        )
        await cores.start()
        # Worker 0 of each queue (or pool) reports the depth of its queues.
        observers = [runner.observe for runner in cores.runners]
        depth = tuple(q.name for q in self.queues) if self.index == 0 else ()
        beat.attach(nc, observers, depth_queues=depth)
        logger.info(
            "worker {} ready: {}",
            self.index,
            ", ".join(f"queue {q.name} concurrency {q.concurrency}" for q in self.queues)
            + (f" (pool {self.pool.name})" if self.pool is not None else ""),
        )
        stopping = loop.create_task(self.stop.wait())
        recycle = loop.create_task(cores.recycle.wait())
        waiters: list[asyncio.Task[bool]] = [stopping, recycle]
        if self.burst:
            # Every configured queue, not just ours: a job may enqueue into any of them.
            queues = self.config.queues.values()
            waiters.append(loop.create_task(wait_idle(nc.jetstream(), queues, cores.holds_nothing)))
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        finished = self.burst and waiters[-1] in done and not waiters[-1].cancelled()
        await cores.stop(self.config.shutdown.grace_period, self.hurry)
        self.threads_busy = cores.threads_busy
        recycled = cores.recycle.is_set() and not self.stop.is_set() and not finished
        logger.info(
            "worker {}: {} done, {} failed",
            "finished its burst" if finished else "recycled" if recycled else "stopped",
            cores.done,
            cores.failed,
        )
        if self.burst and recycled:
            return EXIT_RECYCLED  # burst mode: exit 0 means "no work left"
        return EXIT_OK

    def exit(self, code: int) -> NoReturn:
        if self.threads_busy:
            # A thread stuck in a task would keep the interpreter from exiting: leave now.
            logger.warning("exiting with a task thread still running")
            logger.complete()
            sys.stderr.flush()
            os._exit(code)
        sys.exit(code)
