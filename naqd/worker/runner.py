"""Runs the jobs of one queue in one process: at most `concurrency` at a time, coroutines
on the loop, plain functions in a thread pool; stores the outcome, then acks, naks with a
retry delay, or dead-letters (docs/delivery.md)."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from loguru import logger
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from naqd.client.errors import JobCancelled
from naqd.config import Config, QueueConfig
from naqd.observe.metrics import JobObserver
from naqd.protocol.ackreply import num_delivered
from naqd.protocol.deadletter import DeadLetter, Reason
from naqd.protocol.envelope import (
    Envelope,
    EnvelopeError,
    ErrorInfo,
    ResultRecord,
    decode_job,
    encode_result,
)
from naqd.protocol.names import (
    HDR_ENCODING,
    HDR_MSG_ID,
    HDR_TTL,
    HDR_UNIQUE,
    done_subject,
    result_subject,
)
from naqd.streamwriter import StreamWriter
from naqd.worker.admission import AdmissionPolicy, admit
from naqd.worker.control import JobContext, JobControl, current_job
from naqd.worker.deadletter import bury, entry_id, kept_headers, queue_of
from naqd.worker.notice import RunningNotice
from naqd.worker.recycle import RecycleLimits, rss_bytes
from naqd.worker.redelivery import log_redelivery
from naqd.worker.retry import JobOptions, RetryPolicy, backoff_from_wire, policy_for
from naqd.worker.store import read_record, reliable_publish
from naqd.worker.tasks import (
    BadArguments,
    TaskNotFound,
    check_arguments,
    is_coroutine_task,
    resolve_task,
    task_known,
)
from naqd.worker.timeouts import ThreadRunner, call_async

# What a task may raise: a sys.exit() in a task fails the job, not the worker.
_JOB_ERRORS = (Exception, SystemExit, KeyboardInterrupt)

# Errors of the job itself that retrying cannot fix, and the dead-letter reason for each.
_PERMANENT: dict[type[Exception], Reason] = {
    TaskNotFound: "unknown_task",
    BadArguments: "bad_arguments",
}


class Runner:
    def __init__(self, nc: NATS, config: Config, queue: QueueConfig) -> None:
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
        self.recycle = asyncio.Event()  # set when this process should be replaced
        self.recycle_reason = ""
        self.limits = RecycleLimits.for_queue(queue, random.random())
        self.queue_policy = policy_for(queue)
        self.store_deadline = max(5.0, queue.ack_wait / 2)
        # Cancel requests, progress, unique locks, rate limit (worker/control.py).
        self.control = JobControl(nc, queue, config)
        self.writer = StreamWriter(nc)  # result records, pipelined (naqd/streamwriter.py)
        self.done = 0
        self.failed = 0
        self.cancelled = 0
        self.processed = 0

    async def start(self) -> None:
        await self.control.start()
        await self.writer.start()

    async def stop(self) -> None:
        """After drain: write the last counts, stop listening."""
        self.observe.flush()
        await self.control.stop()
        await self.writer.stop()

    # -- slots --------------------------------------------------------------------------

    def free_slots(self) -> int:
        if self.draining or self.recycle.is_set():
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
            self.processed += 1
            self._check_recycle()
            if self.backlog and not self.draining:
                self._start(self.backlog.popleft())
            if not self.running:
                self.idle.set()
            if self.on_slot_free is not None:
                self.on_slot_free()

    def request_recycle(self, reason: str) -> None:
        if not self.recycle.is_set():
            logger.warning("recycling this worker process: {}", reason)
            self.recycle_reason = reason
            self.recycle.set()

    def _check_recycle(self) -> None:
        reason = self.limits.exceeded(self.processed, rss_bytes)
        if reason:
            self.request_recycle(reason)

    # -- one job ------------------------------------------------------------------------

    async def process(self, msg: Msg) -> None:
        delivered = _num_delivered(msg)
        headers = msg.headers or {}
        encoding = headers.get(HDR_ENCODING, "json")
        try:
            env = admit(msg.data, headers, self.admission)  # size, signature, allow-list
            policy = self._policy(env)
        except (EnvelopeError, ValueError) as exc:
            error = ErrorInfo(type(exc).__name__, str(exc))
            await self._dead(msg, None, None, "unreadable", error, (error,), delivered)
            return
        store = env.result_ttl != 0
        prior = await read_record(self.js, env.id) if store and delivered > 1 else None
        attempt, errors = _attempt(prior, delivered, store)
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
            encoding="pickle" if encoding == "pickle" else "json",
            errors=errors,
        )
        if self.control.is_cancelled(env.id):
            logger.info("job {} was cancelled before it started: skipped", env.id)
            await self._cancelled(msg, env, base)
            return
        if self.control.limiter is not None and await self.control.wait_for_rate():
            base = replace(base, started_at=time.time())  # waited for the queue's `rate`
        if attempt > policy.max_attempts:
            # Its workers kept dying while running it: the attempts are used up.
            error = errors[-1] if errors else ErrorInfo("WorkerLost", "attempts used up")
            await self._dead(msg, env, base, "worker_lost", error, errors, attempt)
            return
        if store and delivered > 1:
            # A redelivery may be a poison pill: make sure the next delivery can count
            # this attempt even if the task kills the process straight away.
            await self._store(env, base)
        self.observe.started(env.id, env.task, env.enqueued_at)
        ctx = self.control.begin(env, attempt, base, self._ttl(env) if store else None, store)
        notice: RunningNotice | None = None
        if store and delivered == 1:
            # 'running' is informational on a first delivery: written only for a job still
            # running after RUNNING_NOTICE_AFTER, so a short job costs one KV write, not two.
            # Encoded when it fires, with the progress the job has reported by then.
            notice = RunningNotice(
                lambda: self.nc.publish(
                    result_subject(env.id),
                    encode_result(ctx.with_progress(base), self.admission.keyring),
                    headers=self._ttl(env),
                )
            )
        try:
            result = await self._call(env)
        except (*_JOB_ERRORS, asyncio.CancelledError) as exc:
            if notice is not None:
                await notice.settle()
            self.control.end(ctx)
            base = ctx.with_progress(base)
            if _was_cancelled(ctx, exc):
                logger.info("job {} {} cancelled", env.id, env.task)
                self.observe.ended(env.id, env.task, "cancelled")
                await self._cancelled(msg, env, base)
                return
            if isinstance(exc, asyncio.CancelledError):
                raise  # the worker is shutting down: drain() hands the job back
            await self._failed(msg, env, base, policy, exc, delivered)
            return
        if notice is not None:
            await notice.settle()
        self.control.end(ctx)
        self.done += 1
        self.observe.ended(env.id, env.task, "succeeded")
        if store:
            await self._store(env, _final(ctx.with_progress(base), result, None), final=True)
        await msg.ack()
        if HDR_UNIQUE in headers:
            await self.control.release_unique(headers, env.id)

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
            ctx = current_job()  # set by JobControl.begin
            task = asyncio.current_task()
            ctx.enter(task)  # a cancel request cancels this await only
            try:
                return await call_async(fn, env.args, env.kwargs, timeout, task)
            finally:
                ctx.leave()
        return await self.threads.call(fn, env.args, env.kwargs, timeout, self._on_stuck)

    def _on_stuck(self) -> None:
        self.request_recycle("a job's thread outlived its timeout")

    async def _failed(
        self,
        msg: Msg,
        env: Envelope,
        base: ResultRecord,
        policy: RetryPolicy,
        exc: BaseException,
        delivered: int,
    ) -> None:
        error = ErrorInfo(type(exc).__name__, str(exc), traceback.format_exc())
        errors = (*base.errors, error)
        attempt = base.attempts
        permanent = next((r for t, r in _PERMANENT.items() if isinstance(exc, t)), None)
        retry = permanent is None and policy.retryable(exc) and attempt < policy.max_attempts
        if retry and delivered >= self.queue.deliveries:
            retry = False  # the server would not deliver it again: dead-letter it now
            error = replace(error, message=f"{error.message} (max_deliveries reached)")
        if not retry:
            reason: Reason = permanent or "failed"
            self.observe.ended(env.id, env.task, "failed")
            await self._dead(msg, env, base, reason, error, errors, attempt)
            return
        self.observe.ended(env.id, env.task, "retried")
        delay = policy.delay(attempt)
        logger.warning(
            "job {} {} failed (attempt {}/{}): {}: {}; retry in {:.1f}s",
            env.id,
            env.task,
            attempt,
            policy.max_attempts,
            error.type,
            error.message,
            delay,
        )
        if env.result_ttl != 0:
            # Awaited: the next attempt reads it to count attempts and keep the errors.
            await self._store(env, replace(base, status="retrying", error=error, errors=errors))
        await msg.nak(delay=delay)

    async def _dead(
        self,
        msg: Msg,
        env: Envelope | None,
        base: ResultRecord | None,
        reason: Reason,
        error: ErrorInfo,
        errors: tuple[ErrorInfo, ...],
        attempts: int,
    ) -> None:
        """Dead-letter, store the failed record, then term: the job leaves the stream
        only once both are stored."""
        self.failed += 1
        headers = msg.headers or {}
        seq = msg.metadata.sequence.stream
        entry = DeadLetter(
            id=entry_id(env.id if env else headers.get(HDR_MSG_ID), seq),
            queue=env.queue if env else queue_of(msg.subject),
            reason=reason,
            error=error,
            errors=errors,
            subject=msg.subject,
            payload=msg.data,
            headers=kept_headers(headers),
            attempts=attempts,
            task=env.task if env else "",
            stream_seq=seq,
            worker=self.worker,
        )
        record = None
        if env is not None and base is not None and env.result_ttl != 0:
            record = replace(_final(base, None, error), errors=errors)
        elif env is None and entry.id == headers.get(HDR_MSG_ID):
            # Unreadable, but its producer may be waiting on the id it published with.
            record = ResultRecord(
                id=entry.id,
                status="failed",
                error=error,
                errors=errors,
                attempts=attempts,
                queue=entry.queue,
                finished_at=time.time(),
                worker=self.worker,
            )
        await bury(self.nc, entry, record, self.store_deadline)
        self.observe.dead_lettered(entry.task)
        if record is not None:
            await self.nc.publish(done_subject(record.id), encode_result(record))
        await msg.term()
        if env is not None:
            await self.control.release_unique(msg.headers, env.id)

    async def _cancelled(self, msg: Msg, env: Envelope, base: ResultRecord) -> None:
        """Status `cancelled`: recorded and acked, never retried or dead-lettered."""
        self.cancelled += 1
        if env.result_ttl != 0:
            rec = replace(_final(base, None, None), status="cancelled")
            await self._store(env, rec, final=True)
        await msg.ack()
        await self.control.release_unique(msg.headers, env.id)

    async def _store(self, env: Envelope, rec: ResultRecord, final: bool = False) -> None:
        """Store a record; a final one is then announced on naqd.done.<id>, so a waiting
        client learns of it only once it is stored (docs/protocol.md)."""
        keyring = self.admission.keyring
        try:
            data = encode_result(rec, keyring)
        except TypeError as exc:
            rec = replace(rec, result=None, error=ErrorInfo("TypeError", str(exc)))
            data = encode_result(rec, keyring)
        await reliable_publish(
            self.writer, result_subject(env.id), data, self._ttl(env), self.store_deadline
        )
        if final:
            await self.nc.publish(done_subject(env.id), data)

    def _ttl(self, env: Envelope) -> dict[str, str] | None:
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
            await self._hand_back(msg)
        self.threads.shutdown()

    async def _hand_back(self, msg: Msg) -> None:
        """An attempt cut short by shutdown does not count: record it as queued again."""
        try:
            env = decode_job(msg.data, (msg.headers or {}).get(HDR_ENCODING, "json"))
            if env.result_ttl != 0:
                rec = await read_record(self.js, env.id)
                if rec is not None and rec.status == "running":
                    back = replace(rec, status="queued", attempts=max(0, rec.attempts - 1))
                    await self.js.publish(result_subject(env.id), encode_result(back), timeout=2.0)
        except Exception as exc:
            logger.debug("cannot reset the record of an interrupted job: {}", exc)
        await self._nak(msg)

    async def _nak(self, msg: Msg) -> None:
        try:
            await msg.nak()
        except Exception as exc:
            logger.debug("nak failed: {}", exc)


def _options(env: Envelope) -> JobOptions:
    return JobOptions(
        retries=env.retries,
        backoff=None if env.backoff is None else backoff_from_wire(env.backoff),
        retry_on=env.retry_on,
        dont_retry_on=env.dont_retry_on,
    )


def _attempt(
    prior: ResultRecord | None, delivered: int, store: bool
) -> tuple[int, tuple[ErrorInfo, ...]]:
    """This attempt's number and the errors so far. Deliveries overcount attempts (a job
    handed back at shutdown is delivered again), so the stored record counts them."""
    if not store:
        return delivered, ()
    if prior is None or delivered == 1:
        return 1, ()
    errors = prior.errors
    if prior.status == "running":
        lost = ErrorInfo(
            "WorkerLost",
            f"attempt {prior.attempts} ended without an outcome (worker {prior.worker} died)",
        )
        errors = (*errors, lost)
    return prior.attempts + 1, errors


def _num_delivered(msg: Msg) -> int:
    try:
        return num_delivered(msg.reply)
    except ValueError:
        return msg.metadata.num_delivered  # raises nats-py's own error for a non-JS reply


def _final(base: ResultRecord, result: Any, error: ErrorInfo | None) -> ResultRecord:
    # Built directly: dataclasses.replace inspects every field on each call.
    return ResultRecord(
        id=base.id,
        status="failed" if error else "succeeded",
        result=result,
        error=error,
        attempts=base.attempts,
        task=base.task,
        queue=base.queue,
        enqueued_at=base.enqueued_at,
        started_at=base.started_at,
        finished_at=time.time(),
        worker=base.worker,
        encoding=base.encoding,
        errors=base.errors,
        progress=base.progress,
        progress_message=base.progress_message,
    )


def _was_cancelled(ctx: JobContext, exc: BaseException) -> bool:
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
