"""Applying a job's outcome (worker/outcome.py decides it), in the one order that keeps
the at-least-once promise (docs/guarantees.md): store → notify → ack/nak/term → unlock.

- store: the record (and for a dead letter, the DLQ entry first), awaited to its PubAck;
  a failure here raises and leaves the job un-acked, so it is delivered again;
- notify: `naqd.done.<id>` carries the final record, also when `result_ttl: 0` stores
  none, so a producer waiting on the notice always learns the outcome;
- ack (succeeded, cancelled), nak with the retry delay (retry), nak (handed back) or
  term (dead: the DLQ holds it now);
- unlock: a unique job's lock is freed once the job has a final outcome.

`settle()` is the only place that does these, and the only one that counts outcomes
(metrics, the heartbeat's done/failed counts), logs retries and, once the outcome is
applied, calls the middleware's outcome hooks (docs/extending.md).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from loguru import logger
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from naqd.middleware import Hooks, JobInfo
from naqd.observe.metrics import JobObserver
from naqd.protocol.envelope import Envelope, ResultRecord, encode_result
from naqd.protocol.names import HDR_TTL, HDR_UNIQUE, done_subject, result_subject
from naqd.protocol.signing import Keyring
from naqd.transport.streamwriter import StreamWriter
from naqd.worker.deadletter import bury
from naqd.worker.outcome import Cancelled, Dead, Outcome, Retry, Succeeded
from naqd.worker.store import (
    RETRY_FIRST,
    RETRYABLE,
    WRITE_TIMEOUT,
    read_record,
    reliable_publish,
)
from naqd.worker.timeouts import JobTimeout
from naqd.worker.unique import release_unique


def ttl_headers(env: Envelope) -> dict[str, str] | None:
    """The record's `Nats-TTL` (per-job `result_ttl`); None: the bucket's `max_age`."""
    if env.result_ttl is None:
        return None
    return {HDR_TTL: f"{max(1, int(env.result_ttl))}s"}


class Settler:
    def __init__(
        self,
        nc: NATS,
        writer: StreamWriter,
        keyring: Keyring | None,
        worker: str,
        store_deadline: float,
        observe: JobObserver,
        hooks: Hooks | None = None,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.writer = writer  # result records, pipelined (naqd/transport/streamwriter.py)
        self.keyring = keyring
        self.worker = worker
        self.store_deadline = store_deadline
        self.observe = observe  # metrics and the heartbeat's job list
        self.hooks = hooks  # the middleware's outcome hooks (naqd/middleware.py)
        self.done = 0
        self.failed = 0
        self.cancelled = 0

    def encode(self, rec: ResultRecord) -> bytes:
        """Raises when the record's result cannot be encoded (TypeError for JSON)."""
        return encode_result(rec, self.keyring)

    async def store(self, env: Envelope, data: bytes) -> None:
        """A record that must be stored before the job goes on (awaited to its PubAck)."""
        await reliable_publish(
            self.writer, result_subject(env.id), data, ttl_headers(env), self.store_deadline
        )

    async def _store(self, subject: str, data: bytes, headers: dict[str, str] | None) -> None:
        """reliable_publish, with its first attempt made here: the writer's future awaited
        directly, two coroutines less per job; a failure goes on to the retry loop for
        what is left of the deadline."""
        start = time.monotonic()
        try:
            await (await self.writer.submit(subject, data, headers, WRITE_TIMEOUT))
        except RETRYABLE as exc:
            left = self.store_deadline - (time.monotonic() - start) - RETRY_FIRST
            if left <= 0:
                raise
            logger.debug("publish to {} failed ({}); retrying", subject, type(exc).__name__)
            await asyncio.sleep(RETRY_FIRST)
            await reliable_publish(self.writer, subject, data, headers, left)

    async def settle(
        self, msg: Msg, env: Envelope | None, outcome: Outcome, job: JobInfo | None = None
    ) -> None:
        """Apply `outcome` to the delivered `msg` (`env` None: refused at admission, which
        only a `Dead` outcome can be), then call the middleware's outcome hook with `job`
        (None: there is no middleware). Raises when a store fails: nothing is acked
        then, so the job is delivered again, and no outcome hook is called."""
        if type(outcome) is Succeeded:  # the common case first, inline
            assert env is not None
            self.done += 1
            self.observe.ended(env.id, env.task, "succeeded")
            if env.result_ttl != 0:
                await self._store(result_subject(env.id), outcome.data, ttl_headers(env))
            await self.nc.publish(done_subject(env.id), outcome.data)
            await msg.ack()
            if msg.headers and HDR_UNIQUE in msg.headers:
                await release_unique(self.js, msg.headers, env.id)
            if job is not None:
                await self._outcome_hooks(job, outcome)
            return
        await self._apply(msg, env, outcome)
        if job is not None:
            await self._outcome_hooks(job, outcome)

    async def _apply(self, msg: Msg, env: Envelope | None, outcome: Outcome) -> None:
        if isinstance(outcome, Retry):
            assert env is not None
            self.observe.ended(env.id, env.task, "retried")
            error = outcome.record.error
            logger.warning(
                "job {} {} failed (attempt {}/{}): {}: {}; retry in {:.1f}s",
                env.id,
                env.task,
                outcome.record.attempts,
                outcome.max_attempts,
                error.type if error else "?",
                error.message if error else "",
                outcome.delay,
            )
            # Awaited: the next attempt reads it to count attempts and errors.
            if env.result_ttl != 0:
                await self._store(
                    result_subject(env.id), self.encode(outcome.record), ttl_headers(env)
                )
            await msg.nak(delay=outcome.delay)
            return  # still pending: the unique lock stays
        if isinstance(outcome, Dead):
            await self._dead(msg, env, outcome)
            return
        if isinstance(outcome, Cancelled):
            assert env is not None
            self.cancelled += 1
            if outcome.ran:
                logger.info("job {} {} cancelled", env.id, env.task)
                self.observe.ended(env.id, env.task, "cancelled")
            else:
                logger.info("job {} was cancelled before it started: skipped", env.id)
            data = self.encode(outcome.record)
            if env.result_ttl != 0:
                await self._store(result_subject(env.id), data, ttl_headers(env))
            await self.nc.publish(done_subject(env.id), data)
            await msg.ack()
            if msg.headers and HDR_UNIQUE in msg.headers:
                await release_unique(self.js, msg.headers, env.id)
            return
        await self.hand_back(msg, env)

    async def _outcome_hooks(self, job: JobInfo, outcome: Outcome) -> None:
        """After the outcome is applied: a hook that raises is reported and changes
        nothing (the job is settled already, exactly once)."""
        hooks = self.hooks
        if hooks is None:
            return
        if isinstance(outcome, Succeeded):
            await hooks.call("on_success", hooks.on_success, job, outcome.result)
        elif isinstance(outcome, Retry | Dead):
            exc = outcome.exc
            if isinstance(exc, JobTimeout):
                await hooks.call("on_timeout", hooks.on_timeout, job, exc)
            if isinstance(outcome, Retry):
                await hooks.call("on_retry", hooks.on_retry, job, exc, outcome.delay)
            else:
                reason = outcome.entry.reason
                await hooks.call("on_dead_letter", hooks.on_dead_letter, job, exc, reason)
        elif isinstance(outcome, Cancelled):
            await hooks.call("on_cancel", hooks.on_cancel, job)

    async def _dead(self, msg: Msg, env: Envelope | None, outcome: Dead) -> None:
        """The job leaves the stream only once its entry and record are stored."""
        entry, record = outcome.entry, outcome.record
        self.failed += 1
        if outcome.ran and env is not None:
            self.observe.ended(env.id, env.task, "failed")
        keep = env is None or env.result_ttl != 0
        await bury(self.nc, entry, record if keep else None, self.store_deadline)
        if record is not None:
            data = self.encode(record) if env is not None else encode_result(record)
            await self.nc.publish(done_subject(record.id), data)
        await msg.term()
        self.observe.dead_lettered(entry.task)
        if env is not None and msg.headers and HDR_UNIQUE in msg.headers:
            await release_unique(self.js, msg.headers, env.id)

    async def hand_back(self, msg: Msg, env: Envelope | None) -> None:
        """A job this worker gives back without an outcome (stopping)."""
        if env is not None and env.result_ttl != 0:
            await self._requeued(env)
        await nak(msg)

    async def _requeued(self, env: Envelope) -> None:
        """An attempt cut short by shutdown does not count: record it as queued again."""
        try:
            rec = await read_record(self.js, env.id)
            if rec is not None and rec.status == "running":
                back = replace(rec, status="queued", attempts=max(0, rec.attempts - 1))
                await self.js.publish(result_subject(env.id), encode_result(back), timeout=2.0)
        except Exception as exc:
            logger.debug("cannot reset the record of an interrupted job: {}", exc)


async def nak(msg: Msg) -> None:
    try:
        await msg.nak()
    except Exception as exc:
        logger.debug("nak failed: {}", exc)
