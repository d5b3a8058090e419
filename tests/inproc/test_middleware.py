"""Middleware hooks (naqd/middleware.py, docs/extending.md) in the in-process worker and
the client, against a real nats-server: each outcome reaches its hook once, after it is
applied, inside around_job; a header a producer hook adds reaches the job; and a hook
that raises (every hook of tests/mw.py's `Raising`) is reported and changes nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from prometheus_client import REGISTRY

from naqd import Client, JobFailed
from naqd.client.deadletters import DeadLetters
from naqd.testing import Worker
from tests.mw import AUDIT_HEADER, Raising, Recorder
from tests.natsserver import NatsServer

QUEUES = {"default": {"concurrency": 4, "retries": 1, "backoff": [0.05]}}


async def _until(predicate: object, what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never: {what}")
        await asyncio.sleep(0.02)


def _errors(hook: str) -> float:
    return REGISTRY.get_sample_value("naqd_middleware_errors_total", {"hook": hook}) or 0.0


@pytest.mark.parametrize("raising_first", [False, True], ids=["recorder", "raising+recorder"])
async def test_every_outcome_reaches_its_hook_once(
    nats_server: NatsServer, tmp_path: Path, raising_first: bool
) -> None:
    """With a middleware whose every hook raises placed first, the recorder after it sees
    exactly what it sees alone, and every job ends as it would without middleware."""
    rec = Recorder()
    chain: list[object] = [Raising(), rec] if raising_first else [rec]
    errors_before = {h: _errors(h) for h in ("on_success", "on_retry", "around_job")}
    url = nats_server.url
    async with (
        Worker(url, tasks=["tests.tasks"], queues=QUEUES, middleware=chain) as worker,
        Client(url, middleware=chain) as client,
    ):
        ok = await client.enqueue("tests.tasks:async_add", 2, 3)
        plain = await client.enqueue("tests.tasks:add", 1, 1)  # Raising's around_job raises
        failing = await client.enqueue("tests.tasks:always_fail", str(tmp_path))
        slow = await client.enqueue(
            "tests.tasks:async_record", str(tmp_path), 1, 30, timeout=0.3, retries=0
        )
        waiting = await client.enqueue("tests.tasks:async_wait_forever", str(tmp_path))
        assert await ok.result(timeout=10) == 5
        assert await plain.result(timeout=10) == 2
        with pytest.raises(JobFailed):
            await failing.result(timeout=10)
        with pytest.raises(JobFailed):
            await slow.result(timeout=10)
        await _until(lambda: (tmp_path / "started").exists(), "the waiting job started")
        assert await waiting.cancel()
        await _until(lambda: "on_cancel" in rec.of(waiting.id), "on_cancel")
        await worker.drain(timeout=10)
        dead = await DeadLetters(client.nc).list("default")
        assert worker.succeeded == 2 and worker.failed == 2

    # The producer side: before/after once per job, naqd's own headers put back.
    producer = ("before_enqueue", "after_enqueue")
    for job in (ok, plain, failing, slow, waiting):
        assert [h for h in rec.of(job.id) if h in producer] == list(producer), rec.of(job.id)
        assert rec.detail("after_enqueue", job.id) == (None, True)

    def worker_side(job_id: str) -> list[str]:  # (the worker may start before after_enqueue)
        return [h for h in rec.of(job_id) if h not in producer]

    # The worker side, in order, each outcome hook inside around_job.
    assert worker_side(ok.id) == ["enter", "on_success", "exit"]
    assert rec.detail("on_success", ok.id) == (5, True)
    seen = rec.detail("enter", ok.id)
    assert seen["headers"][AUDIT_HEADER].startswith("recorder:")  # added on enqueue
    assert seen["attempt"] == 1 and seen["task"] == "tests.tasks:async_add"
    assert worker_side(plain.id) == ["enter", "on_success", "exit"]
    attempts = ["enter", "on_retry", "exit", "enter", "on_dead_letter", "exit"]
    assert worker_side(failing.id) == attempts
    assert rec.detail("on_retry", failing.id) == ("RuntimeError", 0.05, 1)
    assert rec.detail("on_dead_letter", failing.id) == ("RuntimeError", "failed", 2)
    assert worker_side(slow.id) == ["enter", "on_timeout", "on_dead_letter", "exit"]
    assert rec.detail("on_dead_letter", slow.id) == ("JobTimeout", "failed", 1)
    assert worker_side(waiting.id) == ["enter", "on_cancel", "exit"]
    # Settled once each: one dead letter per dead job, nothing left in the queue.
    assert sorted(d.id for d in dead) == sorted([failing.id, slow.id])
    if raising_first:
        # Reported and counted, one per raising call.
        assert _errors("on_success") - errors_before["on_success"] == 2
        assert _errors("on_retry") - errors_before["on_retry"] == 1
        # around_job: `plain`'s raised before returning; the 5 other attempts' exits raised.
        assert _errors("around_job") - errors_before["around_job"] == 6


async def test_a_refused_message_reaches_on_dead_letter(nats_server: NatsServer) -> None:
    rec = Recorder()
    url = nats_server.url
    async with Worker(url, tasks=["tests.tasks"], queues=QUEUES, middleware=[rec]) as worker:
        nc = await nats.connect(url)
        try:
            ack = await nc.jetstream().publish(
                "naqd.jobs.default", b"{not json", headers={"Nats-Msg-Id": "refused1"}
            )
            assert ack.seq > 0
        finally:
            await nc.close()
        await _until(lambda: "on_dead_letter" in rec.of("refused1"), "on_dead_letter")
        await worker.drain(timeout=10)
    assert rec.of("refused1") == ["on_dead_letter"]  # never run: no around_job
    assert rec.detail("on_dead_letter", "refused1") == ("JobRejected", "unreadable", 1)


async def test_no_middleware_no_hooks(nats_server: NatsServer) -> None:
    """The default: nothing resolved, nothing called (the hot path tests for None)."""
    async with Worker(nats_server.url, tasks=["tests.tasks"]) as worker:
        assert all(core.runner.hooks is None for core in worker.cores.values())
    assert Client(nats_server.url).hooks is None


async def test_a_manual_schedule_trigger_runs_the_enqueue_hooks(nats_server: NatsServer) -> None:
    """`naqd schedules trigger` and the console's Trigger enqueue through the client, so
    its middleware sees the run as it sees any enqueue (the header reaches the job)."""
    from naqd.models import Config, NatsConfig, ScheduleConfig
    from naqd.protocol.resources import ensure_resources, ensure_scheduler_resources
    from naqd.protocol.schedule_state import ScheduleState

    rec = Recorder()
    async with Client(nats_server.url, middleware=[rec]) as client:
        config = Config(nats=NatsConfig(servers=(nats_server.url,)))
        await ensure_resources(client._js, config)
        await ensure_scheduler_resources(client._js, config)
        await ScheduleState(client._js).set_yaml_schedules(
            [ScheduleConfig(name="hourly", task="tests.tasks:add", cron="0 * * * *", args=(1, 2))]
        )
        job_id = await client.trigger_schedule("hourly")
        assert [c[0] for c in rec.calls if c[1] == job_id] == ["before_enqueue", "after_enqueue"]
        js = client._js
        msg = await js.get_msg("NAQD_JOBS", seq=1, subject="naqd.jobs.default", next=True)
        assert (msg.headers or {}).get(AUDIT_HEADER, "").startswith("recorder:")
