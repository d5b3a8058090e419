"""A queue consumer left past its stream's end is recreated at startup, also when
several processes find it at once (every child runs the same check)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats

from naqd.models import Config, QueueConfig
from naqd.protocol.names import JOBS_STREAM, job_subject
from naqd.protocol.resources import ensure_resources
from tests.natsserver import NatsServer

CONFIG = Config(queues={"q": QueueConfig("q")})


async def ack_jobs(url: str, n: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_resources(js, CONFIG)
    for i in range(n):
        await js.publish(job_subject("q"), b"%d" % i)
    sub = await js.pull_subscribe_bind("q-q", stream=JOBS_STREAM)
    for msg in await sub.fetch(n, timeout=5):
        await msg.ack_sync()
    await nc.close()


async def repair_three_times_at_once(url: str) -> tuple[list[str], int, int]:
    repaired: list[str] = []
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        await asyncio.gather(
            *(ensure_resources(js, CONFIG, lambda c, why: repaired.append(c)) for _ in range(3))
        )
        await js.publish(job_subject("q"), b"after the crash")
        info = await js.consumer_info(JOBS_STREAM, "q-q")
        return repaired, info.num_pending, info.delivered.stream_seq
    finally:
        await nc.close()


def test_a_consumer_found_past_a_recreated_stream_is_repaired(tmp_path: Path) -> None:
    store = tmp_path / "nats"
    server = NatsServer(store).start()
    try:
        asyncio.run(ack_jobs(server.url, 20))
    finally:
        server.stop()
    # The stream's metadata and messages are lost (as after a power cut before they
    # were synced); its consumer's state file, at stream sequence 20, is left behind.
    stream_dir = next(store.glob(f"jetstream/*/streams/{JOBS_STREAM}"))
    (stream_dir / "meta.inf").write_bytes(b"")
    for block in (stream_dir / "msgs").iterdir():
        block.unlink()
    assert (stream_dir / "obs" / "q-q" / "o.dat").exists()
    server = NatsServer(store).start()
    try:
        repaired, pending, delivered = asyncio.run(repair_three_times_at_once(server.url))
    finally:
        server.stop()
    assert "q-q" in repaired
    assert (pending, delivered) == (1, 0)  # the job enqueued afterwards will be delivered
