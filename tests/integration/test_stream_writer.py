"""StreamWriter: pipelined stream writes on a real nats-server, and the errors a caller
retries on (the same ones js.publish raises)."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import StreamConfig
from nats.js.errors import APIError, NoStreamResponseError

from naqd.protocol.names import batch_headers, batch_stream
from naqd.transport.streamwriter import Batching, StreamWriter
from naqd.worker.store import reliable_publish


async def test_writes_are_stored_and_confirmed(nats_server) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="W", subjects=["w.>"]))
    writer = StreamWriter(nc)
    await writer.start()
    # Many in flight at once, each confirmed by its own PubAck.
    await asyncio.gather(*(writer.publish(f"w.{i}", b"x%d" % i) for i in range(500)))
    info = await js.stream_info("W")
    assert info.state.messages == 500
    msg = await js.get_msg("W", subject="w.7")
    assert msg.data == b"x7"
    await writer.stop()
    await nc.close()


async def test_no_stream_and_api_errors_are_raised(nats_server) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="W", subjects=["w.>"]))
    writer = StreamWriter(nc)
    await writer.start()
    with pytest.raises(NoStreamResponseError):
        await writer.publish("nowhere.at.all", b"x")
    with pytest.raises(APIError) as err:
        # A failed expectation: the stream answers with an error PubAck.
        await writer.publish("w.1", b"x", headers={"Nats-Expected-Last-Sequence": "999"})
    assert "sequence" in str(err.value).lower()
    await writer.stop()
    await nc.close()


async def test_a_write_nobody_confirms_times_out_and_reliable_publish_gives_up(
    nats_server,
) -> None:
    nc = await nats.connect(nats_server.url)

    # A plain subscriber takes the message and never answers: no PubAck, no 503.
    async def ignore(msg: object) -> None:
        return None

    await nc.subscribe("silent.x", cb=ignore)
    writer = StreamWriter(nc)
    await writer.start()
    with pytest.raises(NatsTimeoutError):
        await writer.publish("silent.x", b"x", timeout=0.3)
    with pytest.raises(NatsTimeoutError):
        await reliable_publish(writer, "silent.x", b"x", deadline=0.5)
    assert writer._pending == {}  # nothing left behind
    await writer.stop()
    await nc.close()


async def test_enqueue_many_with_no_stream_fails_clearly_and_leaves_nothing_pending(
    nats_server,
) -> None:
    from naqd import Client
    from naqd.client.errors import EnqueueError

    # No naqd resources on this server: every pipelined write is refused (no stream),
    # and the client says so at once (NotInitialized is an EnqueueError).
    async with Client(nats_server.url, publish_deadline=0.5) as client:
        with pytest.raises(EnqueueError, match="streams do not exist yet"):
            await client.enqueue_many("tests.tasks:add", [(1, 2)] * 50)
        assert client._writer is not None and client._writer._pending == {}


async def test_answered_writes_leave_the_timeout_heap_and_timeouts_still_fire(
    nats_server,
) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="W", subjects=["w.>"]))
    writer = StreamWriter(nc)
    await writer.start()
    futures = [await writer.submit(f"w.{i}", b"x", timeout=30) for i in range(3000)]
    await writer.wait(futures, timeout=10)
    assert all(f.done() and f.exception() is None for f in futures)
    # Answered long before their 30 s deadline: the sweeper drops them from its heap.
    deadline = asyncio.get_running_loop().time() + 5
    while writer._deadlines and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert writer._deadlines == []

    async def ignore(msg: object) -> None:
        return None

    await nc.subscribe("silent.y", cb=ignore)
    with pytest.raises(NatsTimeoutError):
        await writer.publish("silent.y", b"x", timeout=0.3)
    await writer.stop()
    await nc.close()


BATCHING = Batching(batch_stream, batch_headers)


def jobs_and_results_config(name: str, atomic: bool) -> StreamConfig:
    """A stream on naqd's job subjects, so the writer's default grouping batches it."""
    return StreamConfig(name=name, subjects=["naqd.jobs.>"], allow_atomic=atomic or None)


async def test_writes_of_one_turn_share_one_atomic_batch(nats_server) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(jobs_and_results_config("NAQD_JOBS", atomic=True))
    writer = StreamWriter(nc, BATCHING)
    await writer.start()
    futs = [await writer.submit(f"naqd.jobs.q.{i}", b"j%d" % i) for i in range(300)]
    await asyncio.gather(*futs)
    assert (await js.stream_info("NAQD_JOBS")).state.messages == 300
    # Stored as batches of at most MAX_BATCH (the batch headers stay on the messages).
    first = await js.get_msg("NAQD_JOBS", seq=1)
    last = await js.get_msg("NAQD_JOBS", seq=300)
    assert first.headers and "Nats-Batch-Id" in first.headers
    assert last.headers and last.headers["Nats-Batch-Id"] != first.headers["Nats-Batch-Id"]
    await writer.stop()
    await nc.close()


async def test_a_refused_batch_is_sent_write_by_write(nats_server) -> None:
    """A duplicate Nats-Msg-Id refuses a whole atomic batch: each write then gets its
    own answer, and the duplicate counts as stored, as for a single publish."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(jobs_and_results_config("NAQD_JOBS", atomic=True))
    writer = StreamWriter(nc, BATCHING)
    await writer.start()
    await writer.publish("naqd.jobs.q", b"old", headers={"Nats-Msg-Id": "dup"})
    futs = [
        await writer.submit("naqd.jobs.q", b"again", headers={"Nats-Msg-Id": "dup"}),
        await writer.submit("naqd.jobs.q", b"new", headers={"Nats-Msg-Id": "new"}),
    ]
    await asyncio.gather(*futs)
    assert (await js.stream_info("NAQD_JOBS")).state.messages == 2
    await writer.stop()
    await nc.close()


async def test_a_stream_without_atomic_batches_gets_single_writes(nats_server) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(jobs_and_results_config("NAQD_JOBS", atomic=False))
    writer = StreamWriter(nc, BATCHING)
    await writer.start()
    for _ in range(2):  # the second round goes single at once: the refusal is remembered
        futs = [await writer.submit(f"naqd.jobs.q.{i}", b"x") for i in range(10)]
        await asyncio.gather(*futs)
    assert (await js.stream_info("NAQD_JOBS")).state.messages == 20
    assert "NAQD_JOBS" in writer._single
    await writer.stop()
    await nc.close()
