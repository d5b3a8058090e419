"""A queue's cluster-wide numbers, read from NATS by worker 0 of that queue every
`heartbeat.interval` (the supervisor has no connection): pending, in flight, paused, lag
(age of the oldest job not yet delivered) and dead letters; and the log line when the
queue is paused or resumed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from naqd.protocol.names import (
    DEFAULT_PRIORITY,
    DLQ_STREAM,
    JOBS_STREAM,
    dlq_filter,
    priority_consumer_name,
    priority_subject,
)


@dataclass(frozen=True)
class QueueReading:
    pending: int = 0
    in_flight: int = 0
    paused: bool = False
    lag: float = 0.0  # seconds the oldest undelivered job has waited; 0 when none waits
    dead: int = 0


def pause_change(before: bool | None, paused: bool) -> str | None:
    """What to log when the paused state is seen: on a change, and at the first reading
    only if the queue is paused (a running daemon should say why it takes nothing)."""
    if before is None:
        return "paused" if paused else None
    if before == paused:
        return None
    return "paused" if paused else "resumed"


async def read_queue(
    js: JetStreamContext, queue: str, levels: tuple[str, ...], now: float
) -> QueueReading:
    """Sums over the queue's priority levels (one consumer each); the lag is the oldest
    first message after what each consumer has delivered. A retry waiting out its delay
    is in flight, not pending, so it does not count as lag."""
    pending = in_flight = 0
    paused = False
    lag = 0.0
    for level in levels or (DEFAULT_PRIORITY,):
        try:
            info = await js.consumer_info(JOBS_STREAM, priority_consumer_name(queue, level))
        except NotFoundError:
            continue
        pending += info.num_pending or 0
        in_flight += info.num_ack_pending or 0
        paused = paused or bool(info.paused)
        if info.num_pending:
            lag = max(lag, await _oldest_age(js, info, priority_subject(queue, level), now))
    return QueueReading(pending, in_flight, paused, lag, await dead_letters(js, queue))


async def _oldest_age(js: JetStreamContext, info: Any, subject: str, now: float) -> float:
    after = info.delivered.stream_seq if info.delivered else 0
    try:
        msg = await js.get_msg(
            JOBS_STREAM, after + 1, subject=info.config.filter_subject or subject, next=True
        )
    except NotFoundError:  # taken between the two calls
        return 0.0
    return max(0.0, now - msg.time.timestamp()) if msg.time else 0.0


async def dead_letters(js: JetStreamContext, queue: str) -> int:
    """Entries of `queue` in the dead-letter stream (one subject per job id)."""
    try:
        info = await js.stream_info(DLQ_STREAM, subjects_filter=dlq_filter(queue))
    except NotFoundError:
        return 0
    return sum((info.state.subjects or {}).values())
