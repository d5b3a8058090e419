"""Cancel requests inside a worker (docs/job-control.md): which jobs were cancelled (a
core-NATS subscription on the cancel bucket's subjects, plus a full reload at start and
every minute), and the running jobs' contexts, so a request stops the one running here:
a coroutine is cancelled, a thread gets a flag it checks. `begin` also makes
`current_job()` (worker/context.py) return the job's context."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from loguru import logger
from nats.aio.client import Client as NATS

from naqd.protocol.envelope import Envelope, ResultRecord
from naqd.protocol.names import CANCELS_BUCKET, cancel_subject
from naqd.transport.kvwatch import close_watch, open_watch
from naqd.worker.context import JobContext, _current
from naqd.worker.progress import ProgressPublisher

RESYNC_EVERY = 60.0  # reload every cancel record, in case a notice was lost to a reconnect
MAX_REMEMBERED = 100_000  # cancelled ids kept in memory (oldest forgotten first)


class CancelWatch:
    """One per worker process (shared by its queues' runners in an in-process worker)."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.cancelled: dict[str, None] = {}  # insertion-ordered set
        self.running: dict[str, JobContext] = {}
        self._sub: Any = None
        self._resync: asyncio.Task[None] | None = None
        self._users = 0  # runners sharing this watch (the queues of a pooled process)

    async def start(self) -> None:
        """Start watching; a watch shared by several runners starts once."""
        self._users += 1
        if self._users > 1:
            return
        # Subscribe first, then load: a cancel landing in between is seen either way.
        self._sub = await self.nc.subscribe(cancel_subject(">"), cb=self._on_cancel)
        await self._load()
        self._resync = asyncio.get_running_loop().create_task(self._resync_loop())

    async def stop(self) -> None:
        """Stop watching once the last runner sharing this watch stops."""
        self._users = max(0, self._users - 1)
        if self._users:
            return
        if self._resync is not None:
            self._resync.cancel()
            await asyncio.gather(self._resync, return_exceptions=True)
            self._resync = None
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def _on_cancel(self, msg: Any) -> None:
        job_id = msg.subject[len(cancel_subject("")) :]
        self._remember(job_id)
        ctx = self.running.get(job_id)
        if ctx is not None:
            logger.info("job {} cancel requested: stopping it", job_id)
            ctx.request_cancel()

    def _remember(self, job_id: str) -> None:
        self.cancelled[job_id] = None
        if len(self.cancelled) > MAX_REMEMBERED:
            del self.cancelled[next(iter(self.cancelled))]

    async def _load(self) -> None:
        kv = await self.js.key_value(CANCELS_BUCKET)
        watcher = await open_watch(kv, ">", meta_only=True, ignore_deletes=True)
        try:
            async for entry in watcher:
                if entry is None:
                    break
                self._remember(entry.key)
                ctx = self.running.get(entry.key)
                if ctx is not None and not ctx.cancelled:
                    ctx.request_cancel()
        finally:
            await close_watch(watcher)

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_EVERY)
            try:
                await self._load()
            except Exception as exc:
                logger.debug("cancel resync failed: {}", exc)

    def is_cancelled(self, job_id: str) -> bool:
        return job_id in self.cancelled

    def begin(
        self,
        env: Envelope,
        attempt: int,
        base: ResultRecord,
        publish: ProgressPublisher | None,
    ) -> JobContext:
        """Make `current_job()` return this job's context in the calling task (and in the
        tasks and threads it starts); `publish` writes its progress (None: not stored)."""
        ctx = JobContext(env, attempt, asyncio.get_running_loop(), publish, base)
        if env.id in self.cancelled:
            ctx.request_cancel()
        self.running[env.id] = ctx
        _current.set(ctx)
        return ctx

    def end(self, ctx: JobContext) -> None:
        ctx.close()
        if ctx.cancel_sent:
            # The cancel we threw into the coroutine job has been delivered (or the job
            # swallowed it): take it back, so only a worker shutdown leaves one pending.
            ctx.cancel_sent = False
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                task.uncancel()
        if self.running.get(ctx.id) is ctx:
            del self.running[ctx.id]
        _current.set(None)
