"""The worker core of one queue: puller, runner, keep-alive and (optionally) the
advisory mover on a connection someone else opened. The daemon's worker child
(worker/process.py) and the in-process test worker (naqd/testing) run exactly this; only
the boot around it differs."""

from __future__ import annotations

import asyncio
import time

from nats.aio.client import Client as NATS

from naqd.config import Config, QueueConfig
from naqd.middleware import Hooks
from naqd.transport.cancelling import cancel_and_wait
from naqd.worker.deadletter import AdvisoryMover
from naqd.worker.priority import PriorityPuller, make_puller
from naqd.worker.puller import Puller
from naqd.worker.runner import Runner


class WorkerCore:
    """`start()`, then serve until the owner decides to stop, then `stop(grace)`."""

    def __init__(
        self,
        nc: NATS,
        config: Config,
        queue: QueueConfig,
        *,
        advisories: bool = True,
        recyclable: bool = True,
        hooks: Hooks | None = None,
    ) -> None:
        self.nc = nc
        self.config = config
        self.queue = queue
        self.advisories = advisories
        self.runner = Runner(nc, config, queue, hooks)  # hooks: the middleware, or None
        # Without a process of its own (naqd.testing), there is nothing to recycle.
        self.runner.recyclable = recyclable
        self.puller: Puller | PriorityPuller = make_puller(nc, queue, self.runner)
        self.runner.on_slot_free = self.puller.slot_freed
        self._tasks: list[asyncio.Task[None]] = []  # keep-alive and mover, referenced

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self.runner.start()
        self._tasks.append(loop.create_task(self.runner.keep_alive()))
        if self.advisories:
            mover = AdvisoryMover(self.nc, self.config, self.runner.worker, self.runner.hooks)
            self._tasks.append(loop.create_task(mover.run()))
        await self.puller.start()

    def holds_nothing(self) -> bool:
        """No job running here and none waiting in the backlog for a slot."""
        return not self.runner.running and not self.runner.backlog

    async def reset(self) -> None:
        """After a reconnect: pull requests are server state and were lost."""
        await self.puller.reset()

    async def stop(self, grace: float, hurry: asyncio.Event | None = None) -> None:
        """Stop pulling, give running jobs `grace` seconds, hand the rest back."""
        deadline = time.monotonic() + grace
        self.runner.draining = True  # from here on, a delivered job is nak'ed at once
        await self.puller.stop()
        if self.advisories:
            await cancel_and_wait(self._tasks[1:])
        await self.runner.drain(deadline, hurry or asyncio.Event())
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        await self.runner.stop()
