"""Filling queues fast: one envelope built by the real client, copied with a fresh job id
per message, published without waiting for each ack. The bench times draining, not
filling, so the fill only has to store what `client.enqueue` would store."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from naqd.client import Client
from naqd.client.delayed import schedule_headers
from naqd.models import Config, NatsConfig, QueueConfig
from naqd.protocol.names import HDR_MSG_ID, JOBS_STREAM, delayed_subject, holder_msg_id
from naqd.protocol.resources import ensure_resources

FLUSH_EVERY = 10_000  # a flush (PING/PONG) per window keeps the server's ingest in step

# i -> (subject, payload, headers or None)
Message = tuple[str, bytes, dict[str, str] | None]


async def ensure_queue(nc: Any, url: str, queue: str) -> None:
    """naqd's streams, buckets and the queue's consumer, as a worker would create them."""
    config = Config(nats=NatsConfig(servers=(url,)), queues={queue: QueueConfig(name=queue)})
    await ensure_resources(nc.jetstream(), config)


def _template(
    client: Client, task: str, queue: str, result_ttl: float | None
) -> tuple[str, bytes, bytes]:
    subject, payload, headers = client.build(task, (), {}, queue=queue, result_ttl=result_ttl)
    return subject, payload, headers[HDR_MSG_ID].encode()


async def _messages_in_stream(js: Any, stream: str) -> int:
    return int((await js.stream_info(stream)).state.messages)


async def publish_all(
    nc: Any, n: int, message: Callable[[int], Message], stream: str = JOBS_STREAM
) -> None:
    """Core publishes with a flush per window (about 5x the rate of nats-py's
    publish_async), then a check that the stream holds all of them; any shortfall
    (ingest overload drops without telling a core publisher) is republished awaited."""
    js = nc.jetstream()
    expected = await _messages_in_stream(js, stream) + n
    for i in range(n):
        subject, data, headers = message(i)
        await nc.publish(subject, data, headers=headers)
        if i % FLUSH_EVERY == FLUSH_EVERY - 1:
            await nc.flush()
    await nc.flush()
    stored, since = await _messages_in_stream(js, stream), time.monotonic()
    while stored < expected and time.monotonic() - since < 1.0:
        await asyncio.sleep(0.05)
        now_stored = await _messages_in_stream(js, stream)
        if now_stored != stored:
            stored, since = now_stored, time.monotonic()
    for i in range(n, n + max(0, expected - stored)):
        subject, data, headers = message(i)
        await js.publish(subject, data, headers=headers)


async def fill(
    nc: Any,
    url: str,
    n: int,
    *,
    queue: str = "bench",
    task: str = "bench.tasks:anoop",
    result_ttl: float | None = None,
) -> None:
    """`n` jobs on `queue`, each with its own id (results are keyed by it). No
    Nats-Msg-Id header: tracking a million ids for deduplication is a cost of the fill,
    not of the drain, and workers do not read it."""
    await ensure_queue(nc, url, queue)
    subject, payload, old_id = _template(Client(url, nc=nc), task, queue, result_ttl)
    prefix = uuid.uuid4().hex[:12]

    def message(i: int) -> Message:
        return subject, payload.replace(old_id, f"{prefix}{i:020d}".encode(), 1), None

    await publish_all(nc, n, message)


async def fill_delayed(
    nc: Any,
    url: str,
    n: int,
    at: datetime,
    *,
    queue: str,
    id_prefix: str,
    task: str = "bench.tasks:anoop",
) -> None:
    """`n` delayed jobs due at `at`, with ids `<id_prefix><i>`, held by nats-server
    exactly as `client.enqueue_at` stores them (holder subject and schedule headers
    from naqd.client.delayed; the bench's jobs are unsigned JSON, so no other header),
    but without waiting for each ack."""
    await ensure_queue(nc, url, queue)
    target, payload, old_id = _template(Client(url, nc=nc), task, queue, None)

    def message(i: int) -> Message:
        job_id = f"{id_prefix}{i:08d}"
        headers = {HDR_MSG_ID: holder_msg_id(job_id), **schedule_headers(at, target)}
        return delayed_subject(queue, job_id), payload.replace(old_id, job_id.encode(), 1), headers

    await publish_all(nc, n, message)
