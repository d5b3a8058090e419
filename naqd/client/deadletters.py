"""Reading and acting on the dead-letter stream: `client.dead_letters`, `naqd dlq` and
the console all use this. One entry per job (subject `naqd.dlq.<queue>.<job id>`, the
newest death), so a job id finds its entry with one read by subject."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.js.errors import APIError, NotFoundError

from naqd.client.batchget import fetch_range
from naqd.client.errors import Conflict, DeadLetterNotFound
from naqd.client.faults import guarded
from naqd.client.pages import Page, parse_cursor, walk_back
from naqd.protocol.deadletter import DeadLetter, decode_dead_letter
from naqd.protocol.envelope import JOB_ID_RE, ResultRecord, encode_result, valid_job_id
from naqd.protocol.names import (
    DLQ_STREAM,
    DLQ_SUBJECT_PREFIX,
    HDR_EXPECTED_LAST_SUBJECT_SEQ,
    HDR_MSG_ID,
    RESULTS_BUCKET,
    dlq_filter,
    kv_stream,
    purge_subject,
    requeue_msg_id,
    result_subject,
)

if TYPE_CHECKING:
    from naqd.client.explore import DeadLetterRow

# Entry deletes that mean "already gone": 10043 sequence not found, 10057 no message
# found (a 500 when the delete races the entry's replacement).
_GONE = (None, 10043, 10057)


@guarded
class DeadLetters:
    def __init__(self, nc: NATS, timeout: float = 5.0) -> None:
        """`timeout`: how long one JetStream request may wait (the client's
        `request_timeout`)."""
        self.nc = nc
        self.timeout = timeout
        self.js = nc.jetstream(timeout=timeout)

    async def list(self, queue: str | None = None) -> list[DeadLetter]:
        """Every entry (of one queue), oldest first."""
        return [e async for e in self.scan(queue)]

    async def scan(self, queue: str | None = None) -> AsyncIterator[DeadLetter]:
        """Every entry (of one queue), oldest first, read one by one."""
        async for entry in self._scan(dlq_filter(queue)):
            yield entry

    async def get(self, entry_id: str) -> DeadLetter | None:
        """The entry of a job id (or `seq-N` for a message that had none): one read by
        subject, `naqd.dlq.*.<id>`."""
        if not valid_job_id(entry_id):
            return None
        try:
            msg = await self.js.get_msg(
                DLQ_STREAM, seq=1, subject=f"{DLQ_SUBJECT_PREFIX}.*.{entry_id}", next=True
            )
        except NotFoundError:
            return None
        return _decode(msg.data or b"", msg.seq or 0)

    async def count(self, queue: str | None = None) -> int:
        """Entries (of one queue): the stream's count, or its subject count for a queue."""
        try:
            if queue is None:
                info = await self.js.stream_info(DLQ_STREAM)
                return int(info.state.messages or 0)
            info = await self.js.stream_info(DLQ_STREAM, subjects_filter=dlq_filter(queue))
        except NotFoundError:
            return 0
        return sum((info.state.subjects or {}).values())

    async def counts(self) -> dict[str, int]:
        """Entries per queue (one stream info listing every entry's subject)."""
        from naqd.protocol.names import dlq_queue

        try:
            info = await self.js.stream_info(DLQ_STREAM, subjects_filter=dlq_filter())
        except NotFoundError:
            return {}
        counts: dict[str, int] = {}
        for subject, n in (info.state.subjects or {}).items():
            q = dlq_queue(subject)
            counts[q] = counts.get(q, 0) + n
        return counts

    async def page(
        self,
        *,
        queue: str | None = None,
        task: str | None = None,
        error_type: str | None = None,
        reason: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[DeadLetterRow]:
        """Newest first, walking the stream back by sequence (docs/console-data.md)."""
        from naqd.client.explore import DeadLetterRow

        try:
            info = await self.js.stream_info(DLQ_STREAM)
        except NotFoundError:
            return Page(total=0)
        first, last = info.state.first_seq, info.state.last_seq
        start = parse_cursor(cursor, "d")
        if start is not None:
            last = min(last, start)
        filt = dlq_filter(queue)

        async def fetch(lo: int, hi: int) -> list[Any]:
            return await fetch_range(self.nc, DLQ_STREAM, filt, lo, hi)

        def keep(msg: Any) -> DeadLetterRow | None:
            e = _decode(msg.data or b"", msg.seq or 0)
            if e is None:
                return None
            if task and e.task != task:
                return None
            if error_type and e.error.type != error_type:
                return None
            if reason and e.reason != reason:
                return None
            return DeadLetterRow.of(e)

        page = await walk_back(fetch, first, last, keep, limit, "d")
        if queue is None:
            page.total = int(info.state.messages or 0)
        elif cursor is None:
            page.total = await self.count(queue)
        return page

    async def _scan(self, subject: str) -> AsyncIterator[DeadLetter]:
        """Oldest first, in batched direct gets (naqd/client/batchget.py)."""
        from naqd.client.batchget import scan

        messages = scan(self.nc, DLQ_STREAM, subject)
        try:
            async for msg in messages:
                entry = _decode(msg.data or b"", msg.seq or 0)
                if entry is not None:
                    yield entry
        except NotFoundError:
            return  # no dead-letter stream yet
        finally:
            await messages.aclose()  # type: ignore[attr-defined]

    async def requeue(self, entry: DeadLetter) -> None:
        """Publish the original message again (a fresh delivery count, attempts from 1),
        then remove the entry. Conflict when a requeue of this same entry was published
        already (its Nats-Msg-Id derives from the entry's sequence, so the stream's
        dedupe keeps a second copy out); the entry is then left to the first requeue."""
        headers = dict(entry.headers)
        headers[HDR_MSG_ID] = requeue_msg_id(entry.id, entry.seq)
        revision = await self._record_revision(entry.id)
        ack = await self.js.publish(entry.subject, entry.payload, headers=headers)
        if ack.duplicate:
            raise Conflict(
                f"dead letter {entry.id} is being requeued by someone else already "
                "(a second copy was not enqueued)"
            )
        if JOB_ID_RE.match(entry.id) and entry.task:
            # "queued" again, unless a worker already wrote its record for the new run.
            queued = ResultRecord(id=entry.id, status="queued", task=entry.task, queue=entry.queue)
            cas = {HDR_EXPECTED_LAST_SUBJECT_SEQ: str(revision)}
            with contextlib.suppress(APIError):  # a worker took it meanwhile: its record stands
                await self.js.publish(result_subject(entry.id), encode_result(queued), headers=cas)
        await self._delete_seq(entry.seq)

    async def requeue_id(self, job_id: str) -> DeadLetter:
        """Requeue the entry of `job_id`; DeadLetterNotFound, or Conflict (see requeue)."""
        entry = await self.get(job_id)
        if entry is None:
            raise DeadLetterNotFound(job_id)
        await self.requeue(entry)
        return entry

    async def delete(self, job_id: str) -> DeadLetter:
        """Remove the entry of `job_id` for good; DeadLetterNotFound when none is left
        (never existed, or requeued or deleted meanwhile)."""
        entry = await self.get(job_id)
        if entry is None:
            raise DeadLetterNotFound(job_id)
        try:
            await self.js.delete_msg(DLQ_STREAM, entry.seq)
        except APIError as exc:
            if getattr(exc, "err_code", None) in _GONE:
                raise DeadLetterNotFound(job_id) from None
            raise
        return entry

    async def _delete_seq(self, seq: int) -> None:
        try:
            await self.js.delete_msg(DLQ_STREAM, seq)
        except APIError as exc:
            # The requeued job already failed again and its new entry replaced this one.
            if getattr(exc, "err_code", None) not in _GONE:
                raise

    async def _record_revision(self, job_id: str) -> int:
        """The last sequence of the job's result record (0 when it has none)."""
        try:
            msg = await self.js.get_msg(
                kv_stream(RESULTS_BUCKET), subject=result_subject(job_id), direct=True
            )
        except (NotFoundError, NoRespondersError):  # no record, or no results bucket yet
            return 0
        return int(msg.seq or 0)

    async def purge(self, queue: str) -> int:
        """Drop every entry of `queue`; returns how many there were."""
        req = json.dumps({"filter": dlq_filter(queue)}).encode()
        try:
            msg = await self.nc.request(purge_subject(DLQ_STREAM), req, timeout=2 * self.timeout)
        except Exception:
            before = await self.count(queue)
            await self.js.purge_stream(DLQ_STREAM, subject=dlq_filter(queue))
            return before
        resp = json.loads(msg.data)
        if "error" in resp:
            raise APIError.from_error(resp["error"])
        return int(resp.get("purged", 0))


def _decode(data: bytes, seq: int) -> DeadLetter | None:
    try:
        return decode_dead_letter(data, seq=seq)
    except (ValueError, KeyError, TypeError):
        return None  # not ours: someone published to naqd.dlq by hand
