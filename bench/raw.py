"""Raw nats-py baselines on the same server: what naqd's figures are divided by."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import nats
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig

from bench.fill import publish_all

PAYLOAD = b'{"v":1,"id":"x","task":"bench.tasks:noop","queue":"raw","args":[]}'


async def _setup(url: str, name: str):
    nc = await nats.connect(url)
    js = nc.jetstream()
    with contextlib.suppress(Exception):
        await js.delete_stream(name)
    await js.add_stream(
        StreamConfig(name=name, subjects=[f"{name}.>"], retention=RetentionPolicy.WORK_QUEUE)
    )
    return nc, js


async def awaited_publish(url: str, n: int) -> float:
    nc, js = await _setup(url, "RAWPUB")
    t0 = time.perf_counter()
    for i in range(n):
        await js.publish("RAWPUB.x", PAYLOAD, headers={"Nats-Msg-Id": f"m{i}"})
    rate = n / (time.perf_counter() - t0)
    await js.delete_stream("RAWPUB")
    await nc.close()
    return rate


async def pipelined_publish(url: str, n: int) -> float:
    nc, js = await _setup(url, "RAWPIPE")
    t0 = time.perf_counter()
    futs = [
        await js.publish_async("RAWPIPE.x", PAYLOAD, headers={"Nats-Msg-Id": f"m{i}"})
        for i in range(n)
    ]
    await asyncio.gather(*futs)
    rate = n / (time.perf_counter() - t0)
    await js.delete_stream("RAWPIPE")
    await nc.close()
    return rate


async def pull_ack_loop(url: str, n: int, batch: int = 256) -> float:
    """Continuous raw pull + ack, one consumer task: the ceiling of a Python consumer."""
    nc, js = await _setup(url, "RAWPULL")
    await publish_all(nc, n, lambda _: ("RAWPULL.x", PAYLOAD, None), stream="RAWPULL")
    await js.add_consumer(
        "RAWPULL", ConsumerConfig(durable_name="c", ack_policy=AckPolicy.EXPLICIT,
                                  max_ack_pending=20000)
    )  # fmt: skip
    queue: asyncio.Queue = asyncio.Queue()
    inbox = nc.new_inbox()

    async def on_msg(msg) -> None:
        queue.put_nowait(msg)

    await nc.subscribe(inbox, cb=on_msg)
    subject = "$JS.API.CONSUMER.MSG.NEXT.RAWPULL.c"
    body = json.dumps({"batch": batch, "expires": int(5e9)}).encode()
    outstanding = 0
    done = 0
    t0 = time.perf_counter()
    while done < n:
        if outstanding <= batch // 2:
            await nc.publish(subject, body, reply=inbox)
            outstanding += batch
        msg = await queue.get()
        if not msg.reply:  # status message: request ended
            outstanding = 0
            continue
        outstanding -= 1
        await msg.ack()
        done += 1
    await nc.flush()
    rate = n / (time.perf_counter() - t0)
    await js.delete_stream("RAWPULL")
    await nc.close()
    return rate


RESULT = (
    b'{"id":"x","status":"succeeded","result":null,"attempts":1,"task":"bench.tasks:noop",'
    b'"queue":"raw","enqueued_at":1.0,"started_at":1.0,"finished_at":1.0,"worker":"h:1",'
    b'"encoding":"json"}'
)


async def pull_store_ack_loop(url: str, n: int, batch: int = 256) -> float:
    """The ceiling of a job with a stored result: continuous pull; per message a JSON
    decode and a result written to a KV-like stream (reply inbox, pipelined); the job is
    acked when its PubAck arrives. What naqd's stored drains are divided by."""
    nc, js = await _setup(url, "RAWJOB")
    with contextlib.suppress(Exception):
        await js.delete_stream("RAWRES")
    await js.add_stream(StreamConfig(name="RAWRES", subjects=["RAWRES.>"], max_msgs_per_subject=1))
    await publish_all(nc, n, lambda _: ("RAWJOB.x", PAYLOAD, None), stream="RAWJOB")
    await js.add_consumer(
        "RAWJOB", ConsumerConfig(durable_name="c", ack_policy=AckPolicy.EXPLICIT,
                                 max_ack_pending=20000)
    )  # fmt: skip
    queue: asyncio.Queue = asyncio.Queue()
    inbox, acks = nc.new_inbox(), nc.new_inbox() + "."
    waiting: dict[str, object] = {}
    finished = asyncio.Event()
    done = 0

    async def on_msg(msg) -> None:
        queue.put_nowait(msg)

    async def on_puback(msg) -> None:
        nonlocal done
        job = waiting.pop(msg.subject[len(acks) :])
        await job.ack()  # type: ignore[attr-defined]
        done += 1
        if done == n:
            finished.set()

    await nc.subscribe(inbox, cb=on_msg)
    await nc.subscribe(acks + "*", cb=on_puback)
    subject = "$JS.API.CONSUMER.MSG.NEXT.RAWJOB.c"
    body = json.dumps({"batch": batch, "expires": int(5e9)}).encode()

    async def consume() -> None:
        outstanding = got = 0
        while got < n:
            if outstanding <= batch // 2:
                await nc.publish(subject, body, reply=inbox)
                outstanding += batch
            msg = await queue.get()
            if not msg.reply:
                outstanding = 0
                continue
            outstanding -= 1
            got += 1
            json.loads(msg.data)
            waiting[str(got)] = msg
            await nc.publish(f"RAWRES.{got}", RESULT, reply=acks + str(got))

    t0 = time.perf_counter()
    consumer = asyncio.get_running_loop().create_task(consume())
    await finished.wait()
    rate = n / (time.perf_counter() - t0)
    await consumer
    await js.delete_stream("RAWJOB")
    await js.delete_stream("RAWRES")
    await nc.close()
    return rate


async def enqueue_to_start(url: str, n: int) -> dict[str, float]:
    """Raw latency, the baseline of naqd's enqueue-to-start: one message at a time, an
    awaited `js.publish` stamped with the time, received by a continuous pull (a parked
    request, batch 100, re-pulled at half) that acks it; ms from the stamp to receipt."""
    nc, js = await _setup(url, "RAWLAT")
    await js.add_consumer("RAWLAT", ConsumerConfig(durable_name="c", ack_policy=AckPolicy.EXPLICIT))
    got: asyncio.Queue = asyncio.Queue()
    inbox = nc.new_inbox()
    outstanding = 0
    subject = "$JS.API.CONSUMER.MSG.NEXT.RAWLAT.c"
    body = json.dumps({"batch": 100, "expires": int(5e9)}).encode()

    async def pull() -> None:
        nonlocal outstanding
        await nc.publish(subject, body, reply=inbox)
        outstanding = 100

    async def on_msg(msg) -> None:
        nonlocal outstanding
        if not msg.reply:  # the request ended (expired): park another one
            await pull()
            return
        got.put_nowait((time.time() - float(msg.data)) * 1000)
        outstanding -= 1
        await msg.ack()
        if outstanding <= 50:
            await pull()

    await nc.subscribe(inbox, cb=on_msg)
    await pull()
    samples = []
    for _ in range(n):
        await js.publish("RAWLAT.x", repr(time.time()).encode())
        samples.append(await asyncio.wait_for(got.get(), 10))
    await js.delete_stream("RAWLAT")
    await nc.close()
    s = sorted(samples)
    return {"p50": s[len(s) // 2], "p99": s[min(len(s) - 1, int(len(s) * 0.99))]}
