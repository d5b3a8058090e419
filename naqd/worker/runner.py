"""Runs the jobs of one queue in one process: at most `concurrency` at a time, coroutines
on the loop, plain functions in a thread pool. Each job's outcome is decided by
worker/outcome.py and applied by worker/settle.py (docs/delivery.md)."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from loguru import logger
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from naqd.client.errors import JobCancelled
from naqd.config import Config, QueueConfig
from naqd.logs import end_log_job, log_job
from naqd.middleware import Hooks, job_info
from naqd.observe.metrics import JobObserver, recycle_counter
from naqd.protocol.ackreply import num_delivered
from naqd.protocol.envelope import (
    Envelope,
    EnvelopeError,
    ResultRecord,
    decode_job,
    encode_result,
)
from naqd.protocol.names import HDR_ENCODING, batch_headers, batch_stream, result_subject
from naqd.transport.streamwriter import Batching, StreamWriter
from naqd.worker.admission import AdmissionPolicy, admit, refused_job
from naqd.worker.cancels import CancelWatch
from naqd.worker.context import JobContext, current_job
from naqd.worker.notice import RunningNotices, wait_sent
from naqd.worker.outcome import HANDED_BACK, attempt_of, before_run, decide, refused
from naqd.worker.progress import progress_publisher
from naqd.worker.ratelimit import RateLimiter, open_rate_limiter
from naqd.worker.recycle import RecycleLimits, SampledRss, recycle_label
from naqd.worker.redelivery import log_redelivery
from naqd.worker.retry import JobOptions, RetryPolicy, backoff_from_wire, policy_for
from naqd.worker.settle import Settler, ttl_headers
from naqd.worker.settle import nak as _nak
from naqd.worker.store import read_record
from naqd.worker.tasks import (
    check_arguments,
    is_coroutine_task,
    resolve_task,
    task_known,
    with_task_policy,
)
from naqd.worker.timeouts import ThreadRunner, call_async

# What a task may raise: a sys.exit() in a task fails the job, not the worker.
_JOB_ERRORS = (Exception, SystemExit, KeyboardInterrupt)
# Fewer result records than this finishing in one loop turn go as single writes, more as
# one atomic batch (transport/streamwriter.py; measured in docs/performance.md#durability).
RESULT_MIN_BATCH = 64


class Runner:
    def __init__(
        self, nc: NATS, config: Config, queue: QueueConfig, hooks: Hooks | None = None
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.config = config
        self.queue = queue
        self.admission = AdmissionPolicy.from_config(config, queue.name)
        self.observe = JobObserver(queue.name, task_known)  # metrics, heartbeat's job list
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.running: dict[int, tuple[Msg, asyncio.Task[None]]] = {}  # by id(msg)
        self.backlog: deque[Msg] = deque()
        self.draining = False
        self.idle = asyncio.Event()
        self.idle.set()
        self.threads = ThreadRunner(queue.concurrency, f"naqd-{queue.name}")
        # Set by the process: called (synchronously) as each job ends, to re-pull.
        self.on_slot_free: Callable[[], None] | None = None
        # Set by a pool's process: called as each job ends, before a held job may start,
        # so the pool's max_jobs_per_process stops the next one as the queue's own does.
        self.on_job_end: Callable[[], None] | None = None
        self.recycle = asyncio.Event()  # set when this process should be replaced
        self.recycle_reason = ""
        self.recyclable = True  # False in an in-process worker (naqd.testing)
        self.limits = RecycleLimits.for_queue(queue, random.random())
        self._rss = SampledRss()  # read at most every RSS_EVERY s, not after every job
        self.queue_policy = policy_for(queue)
        self.store_deadline = max(5.0, queue.ack_wait / 2)
        self.keep_args = config.results.keep_args  # the job's arguments in its record
        self.cancels = CancelWatch(nc)  # cancel requests (worker/cancels.py)
        self.limiter: RateLimiter | None = None  # the queue's `rate` (worker/ratelimit.py)
        self.notices = RunningNotices()  # lazy 'running' records (worker/notice.py)
        # Result records, pipelined; those of many jobs finishing in one loop turn share an
        # atomic batch, one fsync under sync `always` (naqd/transport/streamwriter.py);
        # small batches made a c10 drain 4x slower (docs/performance.md#durability).
        self.writer = StreamWriter(
            nc, Batching(batch_stream, batch_headers), min_batch=RESULT_MIN_BATCH
        )
        # Applies each job's outcome: store, notify, ack, unlock (worker/settle.py).
        # The middleware (naqd/middleware.py); None when there is none: no cost per job.
        self.hooks = hooks
        self.settler = Settler(
            nc,
            self.writer,
            self.admission.keyring,
            self.worker,
            self.store_deadline,
            self.observe,
            hooks,
        )
        # Naks of jobs delivered while draining or recycling, and of held jobs on a recycle.
        self._naks: set[asyncio.Task[None]] = set()
        self.processed = 0

    # Outcomes are counted where they are applied (worker/settle.py).
    @property
    def done(self) -> int:
        return self.settler.done

    @property
    def failed(self) -> int:
        return self.settler.failed

    @property
    def cancelled(self) -> int:
        return self.settler.cancelled

    async def start(self) -> None:
        await self.cancels.start()
        self.limiter = await open_rate_limiter(self.js, self.config, self.queue)
        await self.writer.start()

    async def stop(self) -> None:
        """After drain: write the last counts, stop listening."""
        self.observe.flush()
        await self.cancels.stop()
        if self._naks:
            await asyncio.gather(*self._naks, return_exceptions=True)
        await self.writer.stop()

    # -- slots --------------------------------------------------------------------------

    def free_slots(self) -> int:
        if self.draining or self.recycle.is_set():
            return 0
        return self.queue.concurrency - len(self.running) - len(self.backlog)

    def deliver(self, msg: Msg) -> None:
        """Called by the puller for each job message: start it, or hold it for a slot.
        A process that drains or recycles starts nothing more: the job goes back."""
        if self.draining or self.recycle.is_set():
            self._nak_later(msg)
        elif len(self.running) < self.queue.concurrency:
            self._start(msg)
        else:
            self.backlog.append(msg)

    def _nak_later(self, msg: Msg) -> None:
        task = asyncio.get_running_loop().create_task(_nak(msg))
        self._naks.add(task)
        task.add_done_callback(self._naks.discard)

    def hand_back_held(self) -> None:
        """Nak every held job now (a recycle): another worker can start them at once,
        instead of this process running them past its limit or holding them until it
        drains."""
        if self.backlog:
            logger.info("recycling: handing back {} held job(s)", len(self.backlog))
        while self.backlog:
            self._nak_later(self.backlog.popleft())

    def _start(self, msg: Msg) -> None:
        if not self.running:  # idle is set exactly while nothing runs
            self.idle.clear()
        self.running[id(msg)] = (msg, asyncio.get_running_loop().create_task(self._run(msg)))

    async def _run(self, msg: Msg) -> None:
        """One job in its slot: admitted, run and settled (its outcome decided once by
        worker/outcome.py, applied once by worker/settle.py), then the slot freed."""
        token = None
        try:
            delivered = _num_delivered(msg)
            headers = msg.headers or {}
            try:
                # size, signature, allow-list; then the task's own policy under the job's
                env = with_task_policy(admit(msg.data, headers, self.admission))
                policy = self._policy(env)
            except (EnvelopeError, ValueError) as exc:
                await self._refused(msg, exc, headers, delivered)
                return
            token = log_job(env.id, env.task)  # JSON logs: top-level keys (naqd/logs.py)
            await self._process(msg, env, policy, delivered, headers)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Nothing acked: the job is redelivered after ack_wait. Never crash the loop.
            logger.exception("job handling failed; it will be redelivered")
        finally:
            if token is not None:
                end_log_job(token)
            self.running.pop(id(msg), None)
            self.processed += 1
            limits = self.limits
            if limits.max_jobs or limits.max_rss:  # no call per job when there are none
                self._check_recycle()
            if self.on_job_end is not None:
                self.on_job_end()
            if self.recycle.is_set():
                self.hand_back_held()  # the limit is reached: no further job starts here
            elif self.backlog and not self.draining:
                self._start(self.backlog.popleft())
            if not self.running:
                self.idle.set()
            if self.on_slot_free is not None:
                self.on_slot_free()

    def request_recycle(self, reason: str) -> None:
        if not self.recyclable:
            logger.warning("not recycling (no process of its own to replace): {}", reason)
            return
        if not self.recycle.is_set():
            logger.warning("recycling this worker process: {}", reason)
            self.recycle_reason = reason
            self.recycle.set()
            recycle_counter().labels(self.queue.name, recycle_label(reason)).inc()
            self.hand_back_held()

    def _check_recycle(self) -> None:
        reason = self.limits.exceeded(self.processed, self._rss) if self.recyclable else ""
        if reason:
            self.request_recycle(reason)

    # -- one job ------------------------------------------------------------------------

    async def _refused(
        self, msg: Msg, exc: Exception, headers: dict[str, str], delivered: int
    ) -> None:
        """A message refused at admission: dead-lettered without being imported or run."""
        dead = refused(msg, exc, refused_job(exc, headers), delivered, self.worker)
        job = None
        if self.hooks is not None:
            entry = dead.entry
            job = job_info(entry.id, entry.task, entry.queue, delivered, headers)
        await self.settler.settle(msg, None, dead, job)

    async def _process(
        self,
        msg: Msg,
        env: Envelope,
        policy: RetryPolicy,
        delivered: int,
        headers: dict[str, str],
    ) -> None:
        store = env.result_ttl != 0
        prior = await read_record(self.js, env.id) if store and delivered > 1 else None
        attempt, errors = attempt_of(prior, delivered, store)
        if delivered > 1:
            log_redelivery(env.id, env.task, prior, delivered, store)
        base = ResultRecord(
            id=env.id,
            status="running",
            attempts=attempt,
            task=env.task,
            queue=env.queue,
            enqueued_at=env.enqueued_at,
            started_at=time.time(),
            worker=self.worker,
            encoding="pickle" if headers.get(HDR_ENCODING) == "pickle" else "json",
            errors=errors,
        )
        if self.keep_args:
            base.args, base.kwargs = list(env.args), dict(env.kwargs)
        cancelled = env.id in self.cancels.cancelled
        skipped = None
        if cancelled or attempt > 1:  # before_run can only stop a job in these cases
            skipped = before_run(
                cancelled=cancelled, attempt=attempt, max_attempts=policy.max_attempts
            )
        hooks, job, entered = self.hooks, None, None
        if hooks is not None:
            job = job_info(
                env.id, env.task, env.queue, attempt, headers, enqueued_at=env.enqueued_at,
                delivered=delivered,
                timeout=self.queue.timeout if env.timeout is None else env.timeout,
            )  # fmt: skip
        result: Any = None
        exc: BaseException | None = None
        by_cancel = False
        try:
            if skipped is None:
                if hooks is not None and hooks.around_job:  # the run and its outcome hooks
                    entered = await hooks.enter(job)  # type: ignore[arg-type]
                base, result, exc, by_cancel = await self._execute(msg, env, base, delivered)
            outcome = decide(  # by position (see decide): what happened, once
                msg, env, base, policy, delivered, self.queue.deliveries, self.settler.keyring,
                skipped, exc, result, by_cancel, isinstance(exc, asyncio.CancelledError),
            )  # fmt: skip
            if outcome is HANDED_BACK:
                assert exc is not None
                raise exc  # the worker is shutting down: drain() hands the job back
            await self.settler.settle(msg, env, outcome, job)
        finally:
            if entered:
                await hooks.leave(entered, exc)  # type: ignore[union-attr]

    async def _execute(
        self, msg: Msg, env: Envelope, base: ResultRecord, delivered: int
    ) -> tuple[ResultRecord, Any, BaseException | None, bool]:
        """Run the task: the record with the progress it reported, what it returned or
        raised, and whether it ended because a cancel was requested."""
        store = env.result_ttl != 0
        if self.limiter is not None:
            await self.limiter.acquire()
            base = replace(base, started_at=time.time())  # waited for the queue's `rate`
        if store and delivered > 1:
            # A redelivery may be a poison pill: make sure the next delivery can count
            # this attempt even if the task kills the process straight away.
            await self.settler.store(env, self.settler.encode(base))
        self.observe.started(env.id, env.task, env.enqueued_at)
        ttl = ttl_headers(env) if store else None
        ctx = self.cancels.begin(
            env, base.attempts, base, progress_publisher(self.nc, ttl) if store else None
        )
        # 'running' is informational on a first delivery: written only for a job still
        # running after RUNNING_NOTICE_AFTER, so a short job costs one KV write, not two.
        # Encoded when it fires, with the progress the job has reported by then.
        notices = self.notices if store and delivered == 1 else None
        if notices is not None:
            notices.add(id(msg), self._publish_running, env, base, ctx, ttl)
        result: Any = None
        exc: BaseException | None = None
        try:
            result = await self._call(env)
        except (*_JOB_ERRORS, asyncio.CancelledError) as raised:
            exc = raised
        if notices is not None and (sent := notices.settle(id(msg))) is not None:
            await wait_sent(sent)
        self.cancels.end(ctx)
        by_cancel = exc is not None and _was_cancelled(ctx, exc)
        return ctx.with_progress(base), result, exc, by_cancel

    async def _publish_running(
        self, env: Envelope, base: ResultRecord, ctx: JobContext, ttl: dict[str, str] | None
    ) -> None:
        data = encode_result(ctx.with_progress(base), self.admission.keyring)
        await self.nc.publish(result_subject(env.id), data, headers=ttl)

    def _policy(self, env: Envelope) -> RetryPolicy:
        """The queue's policy, built once; a job with its own settings gets its own."""
        if (env.retries, env.backoff, env.retry_on, env.dont_retry_on) == (None,) * 4:
            return self.queue_policy
        return policy_for(self.queue, _options(env))

    async def _call(self, env: Envelope) -> Any:
        fn = resolve_task(env.task)
        check_arguments(env.task, fn, env.args, env.kwargs)
        timeout = env.timeout if env.timeout is not None else self.queue.timeout
        if is_coroutine_task(env.task):
            ctx = current_job()  # set by CancelWatch.begin
            task = asyncio.current_task()
            ctx.enter(task)  # a cancel request cancels this await only
            try:
                return await call_async(fn, env.args, env.kwargs, timeout, task)
            finally:
                ctx.leave()
        return await self.threads.call(fn, env.args, env.kwargs, timeout, self._on_stuck)

    def _on_stuck(self) -> None:
        self.request_recycle("a job's thread outlived its timeout")

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
            await _nak(self.backlog.popleft())
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
            await self._hand_back(msg)
        self.threads.shutdown()

    async def _hand_back(self, msg: Msg) -> None:
        """A job cut short by shutdown: handed back without counting the attempt."""
        try:
            env = decode_job(msg.data, (msg.headers or {}).get(HDR_ENCODING, "json"))
        except Exception:
            env = None
        await self.settler.hand_back(msg, env)


def _options(env: Envelope) -> JobOptions:
    return JobOptions(
        retries=env.retries,
        backoff=None if env.backoff is None else backoff_from_wire(env.backoff),
        retry_on=env.retry_on,
        dont_retry_on=env.dont_retry_on,
    )


def _num_delivered(msg: Msg) -> int:
    try:
        return num_delivered(msg.reply)
    except ValueError:
        return msg.metadata.num_delivered  # raises nats-py's own error for a non-JS reply


def _was_cancelled(ctx: JobContext, exc: BaseException) -> bool:
    """The job ended because it was cancelled (not because the worker is shutting down):
    it raised JobCancelled, or a cancel was requested and then it stopped, by any error
    or by the CancelledError a cancel request threw into the coroutine job."""
    if isinstance(exc, JobCancelled):
        return True
    if not ctx.cancelled:
        return False
    if isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task()  # CancelWatch.end took back our own cancel
        return task is None or task.cancelling() == 0
    return isinstance(exc, Exception)
