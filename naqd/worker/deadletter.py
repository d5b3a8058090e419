"""Dead-lettering: a job that can never succeed is copied to the DLQ stream (with its
traceback) before it leaves the jobs stream, and jobs the server gave up on after
`max_deliver` deliveries are recovered from the advisories captured in a stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import replace
from typing import Any

from loguru import logger
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from naqd.config import Config
from naqd.middleware import Hooks, job_info
from naqd.protocol.deadletter import DeadLetter, Reason, encode_dead_letter
from naqd.protocol.envelope import (
    Envelope,
    EnvelopeError,
    ErrorInfo,
    ResultRecord,
    decode_job,
    encode_result,
    valid_job_id,
)
from naqd.protocol.names import (
    ADVISORY_CONSUMER,
    ADVISORY_STREAM,
    HDR_ENCODING,
    HDR_MSG_ID,
    HDR_SIGNATURE,
    JOBS_STREAM,
    JOBS_SUBJECT_PREFIX,
    TRACE_HEADERS,
    dlq_subject,
    result_subject,
)
from naqd.worker.admission import refused_job
from naqd.worker.store import read_record, reliable_publish

# Headers worth keeping for a requeue (Nats-* bookkeeping is the server's, not ours).
# A requeued signed job stays signed; its trace context lets the requeued run link to
# the original trace (docs/extending.md#opentelemetry).
_KEEP_HEADERS = (HDR_ENCODING, HDR_MSG_ID, HDR_SIGNATURE, *TRACE_HEADERS)


def entry_id(job_id: str | None, stream_seq: int) -> str:
    """The job id when it is usable as a subject token, else the stream sequence."""
    if valid_job_id(job_id):
        return job_id  # type: ignore[return-value]
    return f"seq-{stream_seq}"


def queue_of(subject: str) -> str:
    prefix = JOBS_SUBJECT_PREFIX + "."
    return subject[len(prefix) :].split(".")[0] if subject.startswith(prefix) else "unknown"


def kept_headers(headers: dict[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (headers or {}).items() if k in _KEEP_HEADERS}


async def bury(nc: NATS, entry: DeadLetter, record: ResultRecord | None, deadline: float) -> None:
    """Store the dead letter (and the job's final record) before the caller removes the
    message from the jobs stream: if either write fails, the job is redelivered instead."""
    js = nc.jetstream()
    await reliable_publish(
        js,
        dlq_subject(entry.queue, entry.id),
        encode_dead_letter(entry),
        headers={HDR_MSG_ID: f"dlq:{entry.id}:{entry.stream_seq}"},
        deadline=deadline,
    )
    if record is not None:
        await reliable_publish(
            js, result_subject(record.id), encode_result(record), deadline=deadline
        )
    logger.bind(job_id=entry.id, task=entry.task or None).error(
        "job {} dead-lettered ({}): {}: {}",
        entry.id,
        entry.reason,
        entry.error.type,
        entry.error.message,
    )


class AdvisoryMover:
    """Consumes captured MAX_DELIVERIES advisories: the job is still in the jobs stream
    (out of any consumer's reach), so copy it to the DLQ, then delete it. Every worker
    process runs one; they share a durable consumer, so each advisory is handled once."""

    def __init__(self, nc: NATS, config: Config, worker: str, hooks: Hooks | None = None) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.config = config
        self.worker = worker
        self.hooks = hooks  # the middleware's on_dead_letter (reason worker_lost)
        self.moved = 0

    async def run(self) -> None:
        sub = await self.js.pull_subscribe_bind(ADVISORY_CONSUMER, stream=ADVISORY_STREAM)
        while True:
            try:
                msgs = await sub.fetch(10, timeout=5)
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("advisory fetch failed: {}", exc)
                await asyncio.sleep(1)
                continue
            for msg in msgs:
                try:
                    await self.handle(msg)
                except Exception:
                    logger.exception("handling a max-deliveries advisory failed; will retry")

    async def handle(self, msg: Msg) -> None:
        advisory: dict[str, Any] = json.loads(msg.data)
        seq = int(advisory.get("stream_seq", 0))
        deliveries = int(advisory.get("deliveries", 0))
        if advisory.get("stream") != JOBS_STREAM or not seq:
            await msg.ack()
            return
        try:
            job = await self.js.get_msg(JOBS_STREAM, seq)
        except NotFoundError:
            await msg.ack()  # acked late or already moved: nothing was lost
            return
        entry, record = await self._entry(job, seq, deliveries)
        await bury(self.nc, entry, record, deadline=30.0)
        with contextlib.suppress(NotFoundError):
            await self.js.delete_msg(JOBS_STREAM, seq)
        await msg.ack()
        self.moved += 1
        hooks = self.hooks
        if hooks is not None and hooks.on_dead_letter:  # after it is moved, as in settle
            info = job_info(
                entry.id, entry.task, entry.queue, entry.attempts, job.headers,
                delivered=deliveries,
            )  # fmt: skip
            await hooks.call("on_dead_letter", hooks.on_dead_letter, info, None, entry.reason)

    async def _entry(
        self, job: Any, seq: int, deliveries: int
    ) -> tuple[DeadLetter, ResultRecord | None]:
        headers = job.headers or {}
        data: bytes = job.data or b""
        error = ErrorInfo(
            "WorkerLost",
            f"delivered {deliveries} times without an outcome (max_deliveries reached; "
            "workers were killed or stuck while holding it)",
        )
        queue = queue_of(job.subject)
        task = ""
        env: Envelope | None = None
        try:
            decoded = decode_job(data, headers.get(HDR_ENCODING, "json"))
        except EnvelopeError as exc:
            job_id, task = refused_job(exc, headers)  # filed as the runner files it
        else:
            env, job_id = decoded, decoded.id
        prior = None if env is None else await read_record(self.js, env.id)
        errors = (*(prior.errors if prior else ()), error)
        reason: Reason = "worker_lost"
        entry = DeadLetter(
            id=entry_id(job_id, seq),
            queue=env.queue if env else queue,
            reason=reason,
            error=error,
            errors=errors,
            subject=job.subject,
            payload=data,
            headers=kept_headers(headers),
            attempts=prior.attempts if prior else deliveries,
            task=env.task if env else task,
            stream_seq=seq,
            worker=self.worker,
        )
        record = None
        if env is not None and env.result_ttl != 0:
            base = prior or ResultRecord(id=env.id, status="failed", task=env.task, queue=env.queue)
            record = replace(
                base,
                status="failed",
                result=None,
                error=error,
                errors=errors,
                finished_at=time.time(),
                encoding="json",
            )
        return entry, record
