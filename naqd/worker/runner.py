"""Runs the jobs of one queue in one process: at most `concurrency` at a time, coroutines
on the loop, plain functions in a thread pool; stores the result, then acks."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import os
import socket
import time
import traceback
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from loguru import logger
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from naqd.client.errors import JobCancelled
from naqd.config import Config, QueueConfig
from naqd.protocol.envelope import (
    Envelope,
    EnvelopeError,
    ErrorInfo,
    ResultRecord,
    decode_job,
    encode_result,
)
from naqd.protocol.names import HDR_ENCODING, HDR_TTL, done_subject, result_subject
from naqd.worker.control import JobContext, JobControl, current_job
from naqd.worker.retry import retry_delay
from naqd.worker.tasks import TaskNotFound, resolve_task

# Raised by the job itself: retrying a job whose task cannot be found cannot help.
_PERMANENT = (TaskNotFound,)


class Runner:
    def __init__(self, nc: NATS, config: Config, queue: QueueConfig) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.config = config
        self.queue = queue
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.running: dict[int, tuple[Msg, asyncio.Task[None]]] = {}  # by id(msg)
        self.backlog: deque[Msg] = deque()
        self.draining = False
        self.idle = asyncio.Event()
        self.idle.set()
        self.executor = ThreadPoolExecutor(
            max_workers=queue.concurrency, thread_name_prefix=f"naqd-{queue.name}"
        )
        self.on_slot_free: Any = None  # set by the process: re-pull when a slot frees
        # Cancel requests, progress, unique locks, rate limit (worker/control.py).
        self.control = JobControl(nc, queue, config)
        self.done = 0
        self.failed = 0
        self.cancelled = 0

    # -- slots --------------------------------------------------------------------------

    def free_slots(self) -> int:
        if self.draining:
            return 0
        return self.queue.concurrency - len(self.running) - len(self.backlog)

    def deliver(self, msg: Msg) -> None:
        """Called by the puller for each job message: start it, or hold it for a slot."""
        if self.draining:
            asyncio.get_running_loop().create_task(self._nak(msg))
        elif len(self.running) < self.queue.concurrency:
            self._start(msg)
        else:
            self.backlog.append(msg)

    def _start(self, msg: Msg) -> None:
        self.idle.clear()
        self.running[id(msg)] = (msg, asyncio.get_running_loop().create_task(self._run(msg)))

    async def _run(self, msg: Msg) -> None:
        try:
            await self.process(msg)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Nothing acked: the job is redelivered after ack_wait. Never crash the loop.
            logger.exception("job handling failed; it will be redelivered")
        finally:
            self.running.pop(id(msg), None)
            if self.backlog and not self.draining:
                self._start(self.backlog.popleft())
            if not self.running:
                self.idle.set()
            if self.on_slot_free is not None:
                await self.on_slot_free()

    # -- one job ------------------------------------------------------------------------

    async def process(self, msg: Msg) -> None:
        attempt = msg.metadata.num_delivered
        encoding = (msg.headers or {}).get(HDR_ENCODING, "json")
        try:
            if encoding == "pickle" and self.config.tasks.serializer != "pickle":
                raise EnvelopeError("pickled job refused: tasks.serializer is json")
            env = decode_job(msg.data, encoding)
        except EnvelopeError as exc:
            logger.error("unreadable job (stream seq {}): {}", msg.metadata.sequence.stream, exc)
            await msg.term()
            return
        retries = env.retries if env.retries is not None else self.queue.retries
        timeout = env.timeout if env.timeout is not None else self.queue.timeout
        store = env.result_ttl != 0
        started = time.time()
        base = ResultRecord(
            id=env.id,
            status="running",
            attempts=attempt,
            task=env.task,
            queue=env.queue,
            enqueued_at=env.enqueued_at,
            started_at=started,
            worker=self.worker,
            encoding="pickle" if encoding == "pickle" else "json",
        )
        if self.control.is_cancelled(env.id):
            logger.info("job {} was cancelled before it started: skipped", env.id)
            await self._finish(msg, env, base, None, None, store, "cancelled")
            return
        if await self.control.wait_for_rate():  # waited for the queue's `rate`
            base = replace(base, started_at=time.time())
        if store:
            # Fire-and-forget: 'running' is informational, the final record is awaited.
            await self.nc.publish(
                result_subject(env.id), encode_result(base), headers=self._ttl_headers(env)
            )
        if attempt > retries + 1:
            # Delivered again after workers died holding it: the attempts are used up.
            error = ErrorInfo("WorkerLost", f"job was delivered {attempt} times", "")
            await self._finish(msg, env, base, None, error, store)
            return
        ctx = self.control.begin(env, attempt, base, self._ttl_headers(env), store)
        try:
            result = await self._call(env, timeout)
        except BaseException as exc:
            self.control.end(ctx)
            base = ctx.with_progress(base)
            if _cancelled(ctx, exc):
                logger.info("job {} {} cancelled", env.id, env.task)
                await self._finish(msg, env, base, None, None, store, "cancelled")
                return
            if not isinstance(exc, Exception):
                raise
            error = ErrorInfo(type(exc).__name__, str(exc), traceback.format_exc())
            if not isinstance(exc, _PERMANENT) and attempt <= retries:
                delay = retry_delay(attempt)
                logger.warning(
                    "job {} {} failed (attempt {}/{}): {}: {}; retry in {:.1f}s",
                    env.id,
                    env.task,
                    attempt,
                    retries + 1,
                    error.type,
                    error.message,
                    delay,
                )
                await msg.nak(delay=delay)
                return
            logger.error("job {} {} failed: {}: {}", env.id, env.task, error.type, error.message)
            await self._finish(msg, env, base, None, error, store)
            return
        self.control.end(ctx)
        await self._finish(msg, env, ctx.with_progress(base), result, None, store)

    async def _call(self, env: Envelope, timeout: float) -> Any:
        fn = resolve_task(env.task)
        if inspect.iscoroutinefunction(fn):
            ctx = current_job()
            ctx.enter(asyncio.current_task())  # a cancel request cancels this await only
            try:
                async with asyncio.timeout(timeout or None):
                    return await fn(*env.args, **env.kwargs)
            finally:
                ctx.leave()
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, fn, *env.args, **env.kwargs)
        # A thread cannot be interrupted: on timeout the job fails, the thread runs on.
        return await asyncio.wait_for(loop.run_in_executor(self.executor, call), timeout or None)

    async def _finish(
        self,
        msg: Msg,
        env: Envelope,
        base: ResultRecord,
        result: Any,
        error: ErrorInfo | None,
        store: bool,
        status: str | None = None,
    ) -> None:
        """Store the final record (awaited), then ack: a job is never acked unrecorded."""
        if status == "cancelled":
            self.cancelled += 1
        elif error is None:
            self.done += 1
        else:
            self.failed += 1
        if store:
            rec = _with(base, result, error, status)
            try:
                data = encode_result(rec)
            except TypeError as exc:
                rec = _with(base, None, ErrorInfo("TypeError", str(exc), ""))
                data = encode_result(rec)
            await self.js.publish(result_subject(env.id), data, headers=self._ttl_headers(env))
            await self.nc.publish(done_subject(env.id), data)
        await msg.ack()
        await self.control.release_unique(msg.headers, env.id)

    def _ttl_headers(self, env: Envelope) -> dict[str, str] | None:
        if env.result_ttl is None:
            return None
        return {HDR_TTL: f"{max(1, int(env.result_ttl))}s"}

    # -- keep-alive and drain -----------------------------------------------------------

    async def keep_alive(self) -> None:
        """+WPI for every held job well inside ack_wait, so long jobs run exactly once."""
        interval = max(0.2, self.queue.ack_wait / 3)
        while True:
            await asyncio.sleep(interval)
            for msg in [*(m for m, _ in self.running.values()), *self.backlog]:
                try:
                    await msg.in_progress()
                except Exception as exc:
                    logger.debug("in_progress failed: {}", exc)

    async def drain(self, deadline: float, hurry: asyncio.Event) -> None:
        """Stop taking jobs, give running ones until `deadline` (monotonic), nak the rest."""
        self.draining = True
        while self.backlog:
            await self._nak(self.backlog.popleft())
        remaining = deadline - time.monotonic()
        if self.running and remaining > 0:
            logger.info("draining: waiting for {} running job(s)", len(self.running))
            waits = [asyncio.ensure_future(self.idle.wait()), asyncio.ensure_future(hurry.wait())]
            await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
        for msg, task in list(self.running.values()):
            logger.warning("job not finished at shutdown: nak so another worker takes it")
            task.cancel()
            await self._nak(msg)
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _nak(self, msg: Msg) -> None:
        try:
            await msg.nak()
        except Exception as exc:
            logger.debug("nak failed: {}", exc)


def _cancelled(ctx: JobContext, exc: BaseException) -> bool:
    """The job ended because it was cancelled (not because the worker is shutting down):
    it raised JobCancelled, or a cancel was requested and then it stopped, by any error
    or by the CancelledError a cancel request threw into the coroutine job."""
    if isinstance(exc, JobCancelled):
        return True
    if not ctx.cancelled:
        return False
    if isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task()  # JobControl.end took back our own cancel
        return task is None or task.cancelling() == 0
    return isinstance(exc, Exception)


def _with(
    base: ResultRecord, result: Any, error: ErrorInfo | None, status: str | None = None
) -> ResultRecord:
    return replace(
        base,
        status=status or ("failed" if error else "succeeded"),  # type: ignore[arg-type]
        result=result,
        error=error,
        finished_at=time.time(),
    )
