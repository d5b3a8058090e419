"""Where a running job's progress goes: its record, rewritten with the progress fields
(throttled by JobContext.progress in worker/context.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NATS

from naqd.protocol.envelope import ResultRecord, encode_result
from naqd.protocol.names import result_subject

ProgressPublisher = Callable[[ResultRecord], Awaitable[None]]


def progress_publisher(nc: NATS, headers: dict[str, str] | None) -> ProgressPublisher:
    """A core publish of the running record (a progress write may be lost; the final
    record never is). `headers` carry the job's result TTL."""

    async def publish(rec: ResultRecord) -> None:
        await nc.publish(result_subject(rec.id), encode_result(rec), headers=headers)

    return publish
