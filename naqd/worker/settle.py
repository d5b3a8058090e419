"""Applying a job's outcome (worker/outcome.py decides it), in the one order that keeps
the at-least-once promise (docs/guarantees.md): store → notify → ack/nak/term → unlock.

- store: the record (and for a dead letter, the DLQ entry first), awaited to its PubAck;
  a failure here raises and leaves the job un-acked, so it is delivered again;
- notify: `naqd.done.<id>` carries the final record, also when `result_ttl: 0` stores
  none, so a producer waiting on the notice always learns the outcome;
- ack (succeeded, cancelled), nak with the retry delay (retry), nak (handed back) or
  term (dead: the DLQ holds it now);
- unlock: a unique job's lock is freed once the job has a final outcome.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from loguru import logger
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from naqd.protocol.deadletter import DeadLetter, Reason
from naqd.protocol.envelope import Envelope, ErrorInfo, ResultRecord, encode_result
from naqd.protocol.names import HDR_TTL, HDR_UNIQUE, done_subject, result_subject
from naqd.protocol.signing import Keyring
from naqd.transport.streamwriter import StreamWriter
from naqd.worker.deadletter import bury, entry_id, kept_headers, queue_of
from naqd.worker.outcome import Decision
from naqd.worker.store import (
    RETRY_FIRST,
    RETRYABLE,
    WRITE_TIMEOUT,
    read_record,
    reliable_publish,
)
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
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.writer = writer  # result records, pipelined (naqd/transport/streamwriter.py)
        self.keyring = keyring
        self.worker = worker
        self.store_deadline = store_deadline

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

    async def apply(
        self,
        msg: Msg,
        decision: Decision,
        env: Envelope,
        record: ResultRecord | None,
        data: bytes | None = None,
        dead: DeadLetter | None = None,
    ) -> None:
        """Apply the outcome of a readable job. `data` is `record` already encoded (the
        runner encodes a success first, without building its record: an unstorable
        result fails the job instead); `record` is needed when `data` is not given and
        for a dead letter."""
        kind = decision.kind
        if kind == "handed_back":
            await self.hand_back(msg, env)
            return
        keep = env.result_ttl != 0
        if data is None:
            assert record is not None
            data = encode_result(record, self.keyring)
        # store
        if kind == "dead":
            assert dead is not None
            await bury(self.nc, dead, record if keep else None, self.store_deadline)
        elif keep:
            await self._store(result_subject(env.id), data, ttl_headers(env))
        # notify
        if kind != "retry":
            await self.nc.publish(done_subject(env.id), data)
        # ack, nak or term
        if kind == "retry":
            await msg.nak(delay=decision.delay)
            return  # still pending: the unique lock stays
        if kind == "dead":
            await msg.term()
        else:
            await msg.ack()  # succeeded, cancelled
        # unlock
        if msg.headers and HDR_UNIQUE in msg.headers:
            await release_unique(self.js, msg.headers, env.id)

    async def apply_unreadable(self, msg: Msg, dead: DeadLetter, job_id: str | None) -> None:
        """A message refused at admission: dead-lettered and termed. When its job id was
        readable and valid (admission.refused_job), its producer may be waiting on it: a
        `failed` record and a done notice under that id."""
        record = None
        if job_id is not None and dead.id == job_id:
            record = ResultRecord(
                id=dead.id,
                status="failed",
                task=dead.task,
                error=dead.error,
                errors=dead.errors,
                attempts=dead.attempts,
                queue=dead.queue,
                finished_at=time.time(),
                worker=self.worker,
            )
        await bury(self.nc, dead, record, self.store_deadline)
        if record is not None:
            await self.nc.publish(done_subject(record.id), encode_result(record))
        await msg.term()

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

    def dead_letter(
        self,
        msg: Msg,
        env: Envelope | None,
        reason: Reason,
        error: ErrorInfo,
        errors: tuple[ErrorInfo, ...],
        attempts: int,
        refused: tuple[str | None, str] = (None, ""),
    ) -> DeadLetter:
        """`refused`: the id and task of a job refused at admission (admission.refused_job)."""
        headers = msg.headers or {}
        seq = msg.metadata.sequence.stream
        return DeadLetter(
            id=entry_id(env.id if env else refused[0], seq),
            queue=env.queue if env else queue_of(msg.subject),
            reason=reason,
            error=error,
            errors=errors,
            subject=msg.subject,
            payload=msg.data,
            headers=kept_headers(headers),
            attempts=attempts,
            task=env.task if env else refused[1],
            stream_seq=seq,
            worker=self.worker,
        )


async def nak(msg: Msg) -> None:
    try:
        await msg.nak()
    except Exception as exc:
        logger.debug("nak failed: {}", exc)
