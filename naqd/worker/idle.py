"""Whether queues have any work left: nothing pending in their consumers, nothing
delivered and unacknowledged (running, or waiting for a retry's delay). Used by burst
mode (`naqd run --burst`) and by `naqd.testing.Worker.drain()`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from nats.js import JetStreamContext

from naqd.config import QueueConfig
from naqd.protocol.names import DEFAULT_PRIORITY, JOBS_STREAM, priority_consumer_name


def consumers_of(queue: QueueConfig) -> list[str]:
    """The consumers a queue's workers pull from: one, or one per priority level."""
    if len(queue.priorities) > 1:
        return [priority_consumer_name(queue.name, level) for level in queue.priorities]
    return [priority_consumer_name(queue.name, DEFAULT_PRIORITY)]


async def queues_idle(js: JetStreamContext, queues: Iterable[QueueConfig]) -> bool:
    """True when every consumer of `queues` has nothing pending and nothing unacked, and
    no job entered the jobs stream while we looked (a job's task may enqueue another
    job, into any queue, before its own ack): the stream's last sequence is read before
    and after the consumers."""
    before = (await js.stream_info(JOBS_STREAM)).state.last_seq
    for queue in queues:
        for consumer in consumers_of(queue):
            info = await js.consumer_info(JOBS_STREAM, consumer)
            if info.num_pending or info.num_ack_pending:
                return False
    after = (await js.stream_info(JOBS_STREAM)).state.last_seq
    return before == after


async def wait_idle(
    js: JetStreamContext,
    queues: Iterable[QueueConfig],
    local_idle: Callable[[], bool],
    timeout: float | None = None,
    interval: float = 0.05,
) -> bool:
    """Poll until this process holds no job (`local_idle`) and `queues` are idle; False
    when `timeout` seconds pass first. Two idle readings in a row are required, a cheap
    guard against reading a consumer in the middle of a redelivery."""
    queues = list(queues)
    deadline = None if timeout is None else time.monotonic() + timeout
    streak = 0
    while True:
        if local_idle() and await queues_idle(js, queues):
            streak += 1
            if streak >= 2:
                return True
        else:
            streak = 0
        if deadline is not None and time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
