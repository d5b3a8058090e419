"""The worker core of one queue: puller, runner, keep-alive and (optionally) the
advisory mover on a connection someone else opened; and `WorkerCores`, the cores of one
worker process (one queue, or the queues of a pool). The daemon's worker child
(worker/process.py) and the in-process test worker (naqd/testing) run exactly this; only
the boot around it differs."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence

from loguru import logger
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from naqd.config import Config, PoolConfig, QueueConfig
from naqd.middleware import Hooks
from naqd.observe.metrics import recycle_counter
from naqd.transport.cancelling import cancel_and_wait
from naqd.worker.deadletter import AdvisoryMover
from naqd.worker.idle import consumers_of
from naqd.worker.pausewatch import PauseWatch
from naqd.worker.prefetch import Pace, held_jobs
from naqd.worker.priority import PriorityPuller, make_puller
from naqd.worker.puller import Puller
from naqd.worker.recycle import RecycleLimits, SampledRss, recycle_label
from naqd.worker.runner import Runner
from naqd.worker.settle import nak


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
        # Jobs held waiting for a slot, beyond `concurrency` (docs/configuration.md).
        self.prefetch = queue.prefetch_jobs
        self.puller: Puller | PriorityPuller = make_puller(
            nc, queue, self.room, self.deliver, capacity=queue.concurrency + self.prefetch
        )
        self.explicit_prefetch = queue.prefetch is not None
        self.pace = Pace()  # how long jobs hold their slot: the default prefetch needs short ones
        self.runner.on_slot_free = self._job_ended
        self.pause = PauseWatch(nc, consumers_of(queue), self._paused_changed)
        self._tasks: list[asyncio.Task[None]] = []  # keep-alive and mover, referenced
        self._naks: set[asyncio.Task[None]] = set()

    def room(self) -> int:
        """How many more jobs to ask for: the free slots plus the prefetch, less what
        the backlog already holds; none while the queue is paused, the process drains
        or recycles."""
        runner = self.runner
        if self.pause.paused or runner.draining or runner.recycle.is_set():
            return 0
        return runner.free_slots() + held_jobs(self.prefetch, self.explicit_prefetch, self.pace)

    def _job_ended(self) -> None:
        if self.prefetch and not self.explicit_prefetch:
            self.pace.job_ended(time.monotonic(), len(self.runner.running) + 1)
        self.puller.slot_freed()

    def deliver(self, msg: Msg) -> None:
        """A job from the puller: to the runner, unless the queue was paused meanwhile
        (a job the server sent before it paused goes back at once)."""
        if self.pause.paused:
            self._nak_later(msg)
        else:
            self.runner.deliver(msg)

    def _paused_changed(self, paused: bool) -> None:
        backlog = self.runner.backlog
        if paused:
            if backlog:
                logger.info(
                    "queue {} paused: handing back {} held job(s)", self.queue.name, len(backlog)
                )
            while backlog:
                self._nak_later(backlog.popleft())
        else:
            self.puller.slot_freed()  # ask again now

    def _nak_later(self, msg: Msg) -> None:
        task = asyncio.get_running_loop().create_task(nak(msg))
        self._naks.add(task)
        task.add_done_callback(self._naks.discard)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self.runner.start()
        await self.pause.start()
        self._tasks.append(loop.create_task(self.runner.keep_alive()))
        if self.advisories:
            mover = AdvisoryMover(self.nc, self.config, self.runner.worker, self.runner.hooks)
            self._tasks.append(loop.create_task(mover.run()))
        await self.puller.start()

    def holds_nothing(self) -> bool:
        """No job running here and none waiting in the backlog for a slot."""
        return not self.runner.running and not self.runner.backlog

    async def reset(self) -> None:
        """After a reconnect: pull requests are server state and were lost, and so may
        be a pause advisory."""
        await self.pause.resync()
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
        await self.pause.stop()
        if self._naks:
            await asyncio.gather(*self._naks, return_exceptions=True)
        await self.runner.stop()


class WorkerCores:
    """The cores of one worker process: one `WorkerCore` per queue it serves, so each
    queue keeps its own slots (its `concurrency`), retry policy, `max_in_flight`, `rate`,
    priorities and pause, and a busy queue cannot take another's slots. A process of a
    pool (`pool` given) recycles on the pool's limits, counted over all its queues; a
    process of one queue recycles on that queue's limits, as it always did."""

    def __init__(
        self,
        nc: NATS,
        config: Config,
        queues: Sequence[QueueConfig],
        *,
        pool: PoolConfig | None = None,
        recyclable: bool = True,
        hooks: Hooks | None = None,
    ) -> None:
        self.pool = pool
        self.cores = [
            WorkerCore(nc, config, q, advisories=i == 0, recyclable=recyclable, hooks=hooks)
            for i, q in enumerate(queues)
        ]
        # One recycle event for the process: a stuck thread in any queue's runner, or
        # the pool's limits, stop every queue from taking jobs, then the process drains.
        self.recycle = self.cores[0].runner.recycle
        cancels = self.cores[0].runner.cancels  # one watch of cancel requests, not one per queue
        for core in self.cores[1:]:
            core.runner.recycle = self.recycle
            core.runner.cancels = cancels
        self.limits = RecycleLimits()
        self.processed = 0
        if pool is not None:
            self.limits = (
                RecycleLimits.for_pool(pool, random.random()) if recyclable else self.limits
            )
            self._rss = SampledRss()
            for core in self.cores:
                core.runner.limits = RecycleLimits()  # the queue's own: none in a pool
                if self.limits.max_jobs or self.limits.max_rss:
                    core.runner.on_job_end = self._job_ended

    @property
    def runners(self) -> list[Runner]:
        return [core.runner for core in self.cores]

    def _job_ended(self) -> None:
        """Counted before the ending job's runner may start a held one (runner.py)."""
        self.processed += 1
        self._check_pool_limits()

    def _check_pool_limits(self) -> None:
        assert self.pool is not None
        reason = self.limits.exceeded(self.processed, self._rss)
        if reason and not self.recycle.is_set():
            logger.warning("recycling this worker process of pool {}: {}", self.pool.name, reason)
            for runner in self.runners:
                runner.recycle_reason = reason
            self.recycle.set()
            recycle_counter().labels(self.pool.name, recycle_label(reason)).inc()
            for runner in self.runners:  # every queue's held jobs go back now
                runner.hand_back_held()

    async def start(self) -> None:
        for core in self.cores:
            await core.start()

    def holds_nothing(self) -> bool:
        return all(core.holds_nothing() for core in self.cores)

    async def reset(self) -> None:
        for core in self.cores:
            await core.reset()

    async def stop(self, grace: float, hurry: asyncio.Event | None = None) -> None:
        """Every queue stops pulling at once and shares the same grace for running jobs."""
        await asyncio.gather(*(core.stop(grace, hurry) for core in self.cores))

    @property
    def threads_busy(self) -> bool:
        return any(core.runner.threads.threads_busy for core in self.cores)

    @property
    def done(self) -> int:
        return sum(core.runner.done for core in self.cores)

    @property
    def failed(self) -> int:
        return sum(core.runner.failed for core in self.cores)
