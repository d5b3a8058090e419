"""The scheduler's I/O parts against a real nats-server: the lease over KV and the
idempotent fire."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import nats

from naqd.client import Client
from naqd.config import ScheduleConfig
from naqd.models import Config, LeaderElectionConfig, NatsConfig, SchedulerConfig
from naqd.protocol.names import JOBS_STREAM, LEADER_BUCKET, job_subject
from naqd.protocol.resources import ensure_resources, ensure_scheduler_resources
from naqd.protocol.schedule_state import ScheduleState
from naqd.protocol.ticks import tick_job_id
from naqd.scheduler.election import Election
from naqd.scheduler.firing import publish_fire


def config_for(url: str) -> Config:
    return Config(
        nats=NatsConfig(servers=(url,)),
        scheduler=SchedulerConfig(True, LeaderElectionConfig(lease=2.0, renew_every=0.5)),
    )


async def test_one_leader_and_the_old_one_steps_down_before_takeover(nats_server) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    config = config_for(nats_server.url)
    await ensure_resources(js, config)
    await ensure_scheduler_resources(js, config)
    kv = await js.key_value(LEADER_BUCKET)
    first, second = Election(kv, 2.0, 0.5), Election(kv, 2.0, 0.5)
    await first.step()
    await second.step()
    assert first.revision is not None and second.revision is None
    for _ in range(4):  # renewals keep it
        await asyncio.sleep(0.5)
        await first.step()
        await second.step()
    assert first.lease.held(time.monotonic()) and second.revision is None
    # A partition: the leader's renewals stop reaching the server, and no error arrives.
    partitioned_at = time.monotonic()
    while second.revision is None:
        await asyncio.sleep(0.1)
        await second.step()
        assert time.monotonic() - partitioned_at < 10, "no takeover"
    # By the time anyone else could win, the old leader had stopped on its own clock.
    assert not first.lease.held(time.monotonic())
    assert not first.may_fire()
    assert not second.may_fire()  # the new leader waits one renew interval first
    await asyncio.sleep(0.55)
    assert second.may_fire()
    leader = await ScheduleState(js).leader()
    assert leader is not None and leader.revision == second.revision
    # The old leader's next renewal is refused: it learns it lost.
    first.lease.won(time.monotonic(), first.revision or 1)  # pretend it still believed
    await first.step()
    assert first.revision is None
    # A clean stop hands over at once.
    await second.release()
    third = Election(kv, 2.0, 0.5)
    await third.step()
    assert third.revision is not None
    await nc.close()


async def test_two_schedulers_firing_the_same_tick_store_one_job(nats_server) -> None:
    config = config_for(nats_server.url)
    schedule = ScheduleConfig(name="nightly", task="tests.tasks:add", args=(1, 2), every=60.0)
    tick = datetime(2026, 1, 1, 3, tzinfo=UTC)
    async with Client(nats_server.url) as one, Client(nats_server.url) as two:
        await ensure_resources(one._js, config)
        await publish_fire(one, schedule, tick_job_id("nightly", tick), leader_revision=5)
        await publish_fire(two, schedule, tick_job_id("nightly", tick), leader_revision=9)
        await publish_fire(two, schedule, tick_job_id("nightly", tick.replace(hour=4)))
        info = await one._js.stream_info(JOBS_STREAM, subjects_filter=job_subject("default"))
        assert info.state.subjects == {job_subject("default"): 2}


async def test_schedule_state_reads_as_empty_before_any_scheduler_ran(nats_server) -> None:
    # `naqd schedules` against a NATS no scheduler has used yet: no leader, nothing
    # paused or fired, instead of a BucketNotFoundError traceback.
    nc = await nats.connect(nats_server.url)
    state = ScheduleState(nc.jetstream())
    assert await state.leader() is None
    assert not await state.paused("nightly")
    assert await state.last_fired("nightly") is None
    await nc.close()
