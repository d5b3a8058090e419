"""The runner's slots and backlog (naqd/worker/runner.py) on a fake connection
(tests/fakes.py): at most `concurrency` jobs run, the rest wait in the backlog and start
as slots free up, a freed slot is reported to the puller, and a draining runner takes
nothing new. The jobs are this module's `gate` task, opened one by one by the test."""

from __future__ import annotations

import asyncio
import time

import pytest

from naqd.client.client import Client
from naqd.models import Config, NatsConfig, QueueConfig, TasksConfig
from naqd.worker.runner import Runner
from tests.fakes import FakeNats, job_message

GATES: dict[str, asyncio.Event] = {}
CLIENT = Client("nats://unused")


async def gate(name: str) -> str:
    """Returns once the test opens GATES[name]."""
    await GATES[name].wait()
    return name


async def _runner(concurrency: int) -> tuple[Runner, FakeNats, list[int]]:
    nc = FakeNats()
    queue = QueueConfig(name="q", concurrency=concurrency)
    config = Config(
        nats=NatsConfig(servers=("nats://unused",)),
        queues={"q": queue},
        tasks=TasksConfig(imports=(__name__,)),
    )
    runner = Runner(nc, config, queue)  # type: ignore[arg-type]
    await runner.writer.start()  # no cancel watch: nothing here is cancelled
    freed: list[int] = []
    runner.on_slot_free = lambda: freed.append(len(runner.running))
    return runner, nc, freed


def _deliver(runner: Runner, nc: FakeNats, names: list[str]) -> dict[str, str]:
    """Deliver one gated job per name; their job ids by name."""
    ids = {}
    for i, name in enumerate(names):
        GATES[name] = asyncio.Event()
        _, payload, headers = CLIENT.build(f"{__name__}:gate", (name,), {}, queue="q")
        ids[name] = headers["Nats-Msg-Id"]
        runner.deliver(job_message(nc, payload, headers, seq=i + 1))
    return ids


async def _until(predicate: object, what: str) -> None:
    for _ in range(1000):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never: {what}")


@pytest.mark.parametrize(
    ("concurrency", "jobs", "running", "backlog"),
    [
        (1, 1, 1, 0),
        (2, 2, 2, 0),
        (2, 3, 2, 1),
        (3, 7, 3, 4),
    ],
)
async def test_slots_and_backlog(concurrency: int, jobs: int, running: int, backlog: int) -> None:
    runner, nc, freed = await _runner(concurrency)
    names = [f"s{concurrency}-{jobs}-{i}" for i in range(jobs)]
    ids = _deliver(runner, nc, names)
    assert (len(runner.running), len(runner.backlog)) == (running, backlog)
    assert runner.free_slots() == concurrency - running - backlog
    assert not runner.idle.is_set()
    # Open the gates in delivery order: each freed slot goes to the next job held back.
    for done, name in enumerate(names, 1):
        GATES[name].set()
        await _until(lambda done=done: len(freed) == done, f"{done} slot(s) freed")
        left = jobs - done
        assert len(runner.running) == min(concurrency, left)
        assert len(runner.backlog) == max(0, left - concurrency)
        # (a job held open past 50 ms also wrote its 'running' notice: not the point here)
        steps = [step for step in nc.steps(ids[name]) if step != "running"]
        assert steps == ["store", "notify", "ack"]
    assert runner.idle.is_set() and runner.done == jobs and runner.processed == jobs
    await runner.stop()


async def test_a_draining_runner_naks_what_it_is_given() -> None:
    runner, nc, freed = await _runner(2)
    runner.draining = True
    assert runner.free_slots() == 0
    ids = _deliver(runner, nc, ["drain-a"])
    assert not runner.running and not runner.backlog
    await _until(lambda: nc.steps(ids["drain-a"]) == ["nak"], "the job handed back")
    await runner.stop()  # waits for the naks it started
    assert freed == []


async def test_drain_hands_back_the_backlog_and_what_outlives_the_grace() -> None:
    runner, nc, _ = await _runner(1)
    ids = _deliver(runner, nc, ["d-running", "d-held"])
    await _until(lambda: ids["d-running"] in runner.observe.running, "the job started")
    await runner.drain(time.monotonic() - 1, asyncio.Event())  # no grace
    # The held job is nak'ed at once; the running one is cancelled and handed back.
    assert nc.steps(ids["d-held"]) == ["nak"]
    await _until(lambda: not runner.running, "the running job ended")
    assert nc.steps(ids["d-running"]) == ["nak"]
    assert runner.done == 0 and runner.failed == 0
    await runner.stop()


async def test_a_runner_to_be_recycled_takes_no_more() -> None:
    runner, _, _ = await _runner(4)
    assert runner.free_slots() == 4
    runner.recycle.set()
    assert runner.free_slots() == 0
    await runner.stop()
