"""Reading and acting on the dead-letter stream (used by `naqd dlq`, usable from apps)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from nats.aio.client import Client as NATS
from nats.js.errors import APIError, NotFoundError

from naqd.protocol.deadletter import DeadLetter, decode_dead_letter
from naqd.protocol.envelope import JOB_ID_RE, ResultRecord, encode_result
from naqd.protocol.names import (
    DLQ_STREAM,
    HDR_MSG_ID,
    dlq_filter,
    requeue_msg_id,
    result_subject,
)


class DeadLetters:
    def __init__(self, nc: NATS) -> None:
        self.js = nc.jetstream()

    async def list(self, queue: str | None = None) -> list[DeadLetter]:
        """Every entry (of one queue), oldest first."""
        return [e async for e in self._scan(dlq_filter(queue))]

    async def get(self, entry_id: str) -> DeadLetter | None:
        """The entry of a job id (or `seq-N` for a message that had none)."""
        async for entry in self._scan(f"{dlq_filter()[:-1]}{entry_id}"):
            return entry
        return None

    async def _scan(self, subject: str) -> AsyncIterator[DeadLetter]:
        seq = 1
        while True:
            try:
                msg = await self.js.get_msg(DLQ_STREAM, seq=seq, subject=subject, next=True)
            except NotFoundError:
                return
            entry = _decode(msg.data or b"", msg.seq or 0)
            if entry is not None:
                yield entry
            seq = (msg.seq or seq) + 1

    async def requeue(self, entry: DeadLetter) -> None:
        """Publish the original message again (a fresh delivery count, attempts from 1),
        then remove the entry. The new Nats-Msg-Id keeps the stream's dedupe from
        dropping it as a repeat of the original."""
        headers = dict(entry.headers)
        headers[HDR_MSG_ID] = requeue_msg_id(entry.id, entry.seq)
        if JOB_ID_RE.match(entry.id) and entry.task:
            queued = ResultRecord(id=entry.id, status="queued", task=entry.task, queue=entry.queue)
            await self.js.publish(result_subject(entry.id), encode_result(queued))
        await self.js.publish(entry.subject, entry.payload, headers=headers)
        try:
            await self.js.delete_msg(DLQ_STREAM, entry.seq)
        except APIError as exc:
            # The requeued job already failed again and its new entry replaced this one
            # (one entry per job): 10043 "sequence not found", or 10057 "no message found"
            # (a 500) when the delete races the replacement.
            if getattr(exc, "err_code", None) not in (None, 10043, 10057):
                raise

    async def purge(self, queue: str) -> int:
        """Drop every entry of `queue`; returns how many there were."""
        before = len(await self.list(queue))
        await self.js.purge_stream(DLQ_STREAM, subject=dlq_filter(queue))
        return before


def _decode(data: bytes, seq: int) -> DeadLetter | None:
    try:
        return decode_dead_letter(data, seq=seq)
    except (ValueError, KeyError, TypeError):
        return None  # not ours: someone published to naqd.dlq by hand
