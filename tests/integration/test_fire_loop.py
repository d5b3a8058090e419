"""The fire loop against a real nats-server: many schedules due at once all fire, each
tick's record lands before the schedule's next job, a paused schedule only records,
one schedule that cannot fire holds up no other, and a new term resumes from KV."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from typing import Any

import nats

from naqd.client import Client
from naqd.config import ScheduleConfig
from naqd.models import Config, NatsConfig
from naqd.protocol.names import HDR_LEADER_REV, HDR_MSG_ID, JOBS_SUBJECT_PREFIX, SCHEDULES_BUCKET
from naqd.protocol.resources import ensure_resources, ensure_scheduler_resources
from naqd.protocol.schedule_state import ScheduleState
from naqd.protocol.ticks import parse_stamp
from naqd.scheduler.code_source import PausedSource
from naqd.scheduler.firing import FireLoop
from naqd.transport.streamwriter import StreamWriter, failed

GOOD = [f"s{i}" for i in range(40)]
LAST_PREFIX = f"$KV.{SCHEDULES_BUCKET}.last."


def schedules() -> dict[str, ScheduleConfig]:
    out = {n: ScheduleConfig(name=n, task="tests.tasks:add", args=(1, 2), every=1.0) for n in GOOD}
    out["p"] = ScheduleConfig(name="p", task="tests.tasks:add", every=1.0)
    # Its job is over the client's max_payload: every fire of it fails.
    out["big"] = ScheduleConfig(name="big", task="tests.tasks:add", args=("x" * 4000,), every=1.0)
    return out


class Events:
    """Jobs and `last.<name>` records in the order the server got them (one publisher,
    one subscriber: NATS keeps that order)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, Any]] = []  # (kind, schedule, tick or msg)

    async def on_msg(self, msg: Any) -> None:
        if msg.subject.startswith(LAST_PREFIX):
            record = json.loads(msg.data)
            self.items.append(("last", msg.subject[len(LAST_PREFIX) :], record))
        else:
            job_id = msg.headers[HDR_MSG_ID]
            _, name, stamp = job_id.split(".", 2)
            self.items.append(("job", name, (parse_stamp(stamp), msg.headers)))

    def of(self, name: str) -> list[tuple[str, Any]]:
        return [(kind, x) for kind, n, x in self.items if n == name]


async def poll(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


class Lead:
    def __init__(self) -> None:
        self.on = True

    def __call__(self) -> bool:
        return self.on


async def step_down(loop: FireLoop, lead: Lead) -> None:
    """Stop leading and wait until the fires under way are settled."""
    lead.on = False
    await poll(lambda: not loop.pending and not loop.firer.tasks, 20, "fires to settle")


async def test_a_wave_of_schedules_fires_in_order_and_one_failure_stops_nothing(
    nats_server,
) -> None:
    config = Config(nats=NatsConfig(servers=(nats_server.url,)), schedules=schedules())
    events = Events()
    watcher = await nats.connect(nats_server.url)
    await watcher.subscribe(f"{JOBS_SUBJECT_PREFIX}.>", cb=events.on_msg)
    await watcher.subscribe(f"{LAST_PREFIX}>", cb=events.on_msg)
    async with Client(nats_server.url, max_payload=2048) as client:
        await ensure_resources(client._js, config)
        await ensure_scheduler_resources(client._js, config)
        state = ScheduleState(client._js)
        await state.pause("p")
        paused = PausedSource(await state.kv())
        lead = Lead()
        loop = FireLoop(config, client, state, lead, lambda: 7, None, paused)
        tasks = [asyncio.create_task(paused.run()), asyncio.create_task(loop.run())]

        def fired_three_each() -> bool:
            return all(sum(k == "job" for k, _ in events.of(n)) >= 3 for n in GOOD)

        try:
            await poll(fired_three_each, 30, "three fires of every schedule")
            await poll(lambda: sum(k == "last" for k, _ in events.of("p")) >= 2, 10, "p")
            await step_down(loop, lead)
            await watcher.flush()
        finally:
            await loop.stop()
            paused.stopped = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    await watcher.close()

    for name in GOOD:
        seq = events.of(name)
        # job(T1), last(T1), job(T2), last(T2), ...: a tick is recorded before the next
        # job of its schedule goes out.
        kinds = [k for k, _ in seq]
        assert kinds == ["job", "last"] * (len(kinds) // 2), name
        jobs = [x[0] for k, x in seq if k == "job"]
        records = [parse_stamp(x["tick"]) for k, x in seq if k == "last"]
        assert jobs == sorted(set(jobs)), f"{name}: a tick fired twice or out of order"
        assert records == jobs
        assert all(x[1][HDR_LEADER_REV] == "7" for k, x in seq if k == "job")
    assert [k for k, _ in events.of("p")] == ["last"] * len(events.of("p"))
    assert all(x["job_id"] == "" for _, x in events.of("p"))
    assert events.of("big") == []  # never fired, never recorded: tried again each second
    assert loop.fired == sum(k == "job" for k, _, _ in events.items)


async def test_a_new_term_continues_from_the_recorded_ticks(nats_server) -> None:
    """Leadership lost and won again: the cursors come back from KV, so no tick that
    was fired is fired again, and the schedule goes on."""
    config = Config(
        nats=NatsConfig(servers=(nats_server.url,)),
        schedules={
            "t": ScheduleConfig(name="t", task="tests.tasks:add", every=1.0),
            "off": ScheduleConfig(name="off", task="tests.tasks:add", cron="0 3 * * *",
                                  enabled=False),
        },
    )  # fmt: skip
    events = Events()
    watcher = await nats.connect(nats_server.url)
    await watcher.subscribe(f"{JOBS_SUBJECT_PREFIX}.>", cb=events.on_msg)
    lead = Lead()
    async with Client(nats_server.url) as client:
        await ensure_resources(client._js, config)
        await ensure_scheduler_resources(client._js, config)
        state = ScheduleState(client._js)
        paused = PausedSource(await state.kv())
        loop = FireLoop(config, client, state, lead, lambda: 1, None, paused)
        tasks = [asyncio.create_task(paused.run()), asyncio.create_task(loop.run())]
        try:
            await poll(lambda: len(events.items) >= 2, 20, "two fires")
            # The leader published its YAML schedules for consoles on any host.
            published = {p.name: p for p in await state.yaml_schedules()}
            assert set(published) == {"t", "off"} and not published["off"].enabled
            assert published["t"].every == 1.0 and published["t"].enabled
            await step_down(loop, lead)
            await poll(lambda: not loop.loaded, 5, "the loop to notice")
            await asyncio.sleep(1.5)  # the behaviour under test: a tick passes unled
            before = len(events.items)
            lead.on = True
            await poll(lambda: len(events.items) >= before + 2, 20, "fires in the new term")
        finally:
            await loop.stop()
            paused.stopped = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    await watcher.close()
    ticks = [x[0] for _, _, x in events.items]
    assert ticks == sorted(set(ticks))


async def test_pipelined_publisher_reports_each_write(nats_server) -> None:
    config = Config(nats=NatsConfig(servers=(nats_server.url,)))
    nc = await nats.connect(nats_server.url)
    await ensure_resources(nc.jetstream(), config)
    publisher = StreamWriter(nc)
    await publisher.start()
    subject = f"{JOBS_SUBJECT_PREFIX}.pipelined"
    acks = [await publisher.submit(subject, b"{}", {HDR_MSG_ID: f"j{i % 3}"}) for i in range(6)]
    acks.append(await publisher.submit("no.stream.here", b"{}"))
    await publisher.wait(acks, timeout=5)
    assert [failed(a) for a in acks[:6]] == [None] * 6  # a duplicate is a success
    assert type(failed(acks[6])).__name__ == "NoStreamResponseError"
    info = await nc.jetstream().stream_info("NAQD_JOBS", subjects_filter=subject)
    assert info.state.subjects == {subject: 3}
    await publisher.stop()
    await nc.close()


async def test_the_last_record_of_each_schedule_is_its_last_fired_tick(nats_server) -> None:
    """What `naqd schedules` and the next leader read: `last.<name>` per schedule."""
    config = Config(
        nats=NatsConfig(servers=(nats_server.url,)),
        schedules={n: s for n, s in schedules().items() if n in GOOD[:5]},
    )
    fired: dict[str, list[str]] = defaultdict(list)

    async def on_job(msg: Any) -> None:
        fired[msg.headers[HDR_MSG_ID].split(".")[1]].append(msg.headers[HDR_MSG_ID])

    watcher = await nats.connect(nats_server.url)
    await watcher.subscribe(f"{JOBS_SUBJECT_PREFIX}.>", cb=on_job)
    async with Client(nats_server.url) as client:
        await ensure_resources(client._js, config)
        await ensure_scheduler_resources(client._js, config)
        state = ScheduleState(client._js)
        lead = Lead()
        loop = FireLoop(config, client, state, lead, lambda: 1)  # pauses read from KV
        task = asyncio.create_task(loop.run())
        try:
            await poll(lambda: all(len(fired[n]) >= 2 for n in GOOD[:5]), 20, "two fires each")
            await step_down(loop, lead)
            await watcher.flush()
        finally:
            await loop.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for name in GOOD[:5]:
            record = await state.last_record(name)
            assert record is not None and record["job_id"] == fired[name][-1]
    await watcher.close()


async def test_the_scheduler_runs_the_middleware_of_its_client(nats_server) -> None:
    """Each fire goes through before_enqueue (its header reaches the job), after_enqueue
    and on_schedule_fire (on_missed_tick: tests/unit/test_middleware.py). A middleware
    whose every hook raises, placed first, changes none of it."""
    from tests.mw import AUDIT_HEADER, Raising, Recorder

    calls: list[tuple[str, Any]] = []

    class Ticks(Recorder):
        def on_schedule_fire(self, schedule: Any, tick: Any, job_id: str) -> None:
            calls.append(("fire", (schedule.name, tick, job_id)))

    rec = Ticks()
    schedule = ScheduleConfig(name="m", task="tests.tasks:add", every=1.0)
    config = Config(nats=NatsConfig(servers=(nats_server.url,)), schedules={"m": schedule})
    events = Events()
    watcher = await nats.connect(nats_server.url)
    await watcher.subscribe(f"{JOBS_SUBJECT_PREFIX}.>", cb=events.on_msg)
    lead = Lead()
    async with Client(nats_server.url, middleware=[Raising(), rec]) as client:
        await ensure_resources(client._js, config)
        await ensure_scheduler_resources(client._js, config)
        state = ScheduleState(client._js)
        paused = PausedSource(await state.kv())
        loop = FireLoop(config, client, state, lead, lambda: 1, None, paused)
        tasks = [asyncio.create_task(paused.run()), asyncio.create_task(loop.run())]
        try:
            await poll(lambda: sum(k == "fire" for k, _ in calls) >= 2, 20, "two fires")
            await step_down(loop, lead)
            await watcher.flush()
        finally:
            await loop.stop()
            paused.stopped = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    await watcher.close()
    fires = [x for k, x in calls if k == "fire"]
    jobs = {x[0]: x[1] for kind, name, x in events.items if kind == "job"}
    for name, tick, job_id in fires:
        assert name == "m" and tick in jobs
        assert jobs[tick][AUDIT_HEADER].startswith("recorder:")  # before_enqueue's header
        assert jobs[tick][HDR_MSG_ID] == job_id  # naqd's own header put back
        assert rec.of(job_id) == ["before_enqueue", "after_enqueue"]
        assert rec.detail("after_enqueue", job_id) == (None, True)
