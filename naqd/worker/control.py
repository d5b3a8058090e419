"""Per-job control inside a worker: cancel requests and progress (docs/job-control.md).

`current_job()` (worker/context.py) gives a running job its `JobContext`, a contextvar
set here, so it works in coroutines and in pool threads alike. `JobControl` is one per
worker process: it knows which jobs were cancelled (a core-NATS subscription on the cancel
bucket's subjects, plus a full reload at start and every minute) and stops the ones
running here: a coroutine is cancelled, a thread gets a flag it checks."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from loguru import logger
from nats.aio.client import Client as NATS

from naqd.client.unique import release
from naqd.config import Config, QueueConfig
from naqd.kvwatch import close_watch, open_watch
from naqd.protocol.envelope import Envelope, ResultRecord, encode_result
from naqd.protocol.names import CANCELS_BUCKET, HDR_UNIQUE, cancel_subject, result_subject
from naqd.protocol.resources import ensure_rate_stream
from naqd.worker.context import JobContext, _current, current_job
from naqd.worker.ratelimit import RateLimiter

__all__ = ["JobContext", "JobControl", "current_job"]

RESYNC_EVERY = 60.0  # reload every cancel record, in case a notice was lost to a reconnect
MAX_REMEMBERED = 100_000  # cancelled ids kept in memory (oldest forgotten first)


class JobControl:
    def __init__(self, nc: NATS, queue: QueueConfig | None = None, config: Config | None = None):
        self.nc = nc
        self.js = nc.jetstream()
        self.queue = queue
        self.config = config
        self.limiter: RateLimiter | None = None
        self.cancelled: dict[str, None] = {}  # insertion-ordered set
        self.running: dict[str, JobContext] = {}
        self._sub: Any = None
        self._resync: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Subscribe first, then load: a cancel landing in between is seen either way.
        self._sub = await self.nc.subscribe(cancel_subject(">"), cb=self._on_cancel)
        await self._load()
        self._resync = asyncio.get_running_loop().create_task(self._resync_loop())
        if self.queue is not None and self.queue.rate and self.config is not None:
            if await ensure_rate_stream(self.js, self.config):
                self.limiter = RateLimiter(self.js, self.queue.name, self.queue.rate)
            else:
                logger.error(
                    "queue {}: rate limits need nats-server 2.12 or newer; running unlimited",
                    self.queue.name,
                )

    async def wait_for_rate(self) -> bool:
        """Wait until the queue's cluster-wide rate allows one more job to start; False
        when the queue has no rate limit."""
        if self.limiter is None:
            return False
        await self.limiter.acquire()
        return True

    async def stop(self) -> None:
        if self._resync is not None:
            self._resync.cancel()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

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

    async def release_unique(self, headers: dict[str, str] | None, job_id: str) -> None:
        """A unique job has ended: free its key for the next enqueue."""
        lock = (headers or {}).get(HDR_UNIQUE)
        if not lock:
            return
        try:
            await release(self.js, lock, job_id)
        except Exception as exc:  # the lock's TTL frees it anyway
            logger.warning("job {}: releasing its unique lock failed: {}", job_id, exc)

    def is_cancelled(self, job_id: str) -> bool:
        return job_id in self.cancelled

    def begin(
        self,
        env: Envelope,
        attempt: int,
        base: ResultRecord,
        headers: dict[str, str] | None,
        store: bool,
    ) -> JobContext:
        """Make `current_job()` return this job's context in the calling task (and in the
        tasks and threads it starts)."""

        async def publish(rec: ResultRecord) -> None:
            await self.nc.publish(result_subject(rec.id), encode_result(rec), headers=headers)

        loop = asyncio.get_running_loop()
        ctx = JobContext(env, attempt, loop, publish if store else None, base)
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
