"""RunningNotices: a short job never writes 'running'; a long one does, before its outcome."""

from __future__ import annotations

import asyncio

from naqd.worker.notice import RunningNotices, wait_sent


async def test_short_job_publishes_nothing() -> None:
    sent: list[str] = []

    async def publish(job: str) -> None:
        sent.append(job)

    notices = RunningNotices(after=60)
    notices.add(1, publish, "a")
    assert notices.settle(1) is None  # the job ended before the notice was due
    await asyncio.sleep(0)
    assert sent == [] and not notices._due


async def test_long_job_publishes_once_and_settle_waits_for_it() -> None:
    sent: list[str] = []
    release = asyncio.Event()

    async def publish(job: str) -> None:
        await release.wait()  # a publish still in flight when the job ends
        sent.append(job)

    notices = RunningNotices(after=0.0)
    notices.add(1, publish, "a")
    await asyncio.sleep(0.01)  # let the timer fire
    in_flight = notices.settle(1)
    assert in_flight is not None
    settling = asyncio.ensure_future(wait_sent(in_flight))
    await asyncio.sleep(0.01)
    assert not settling.done()  # the outcome must wait for the notice in flight
    release.set()
    await settling
    assert sent == ["a"]
    assert notices.settle(1) is None  # settled once


async def test_jobs_are_announced_oldest_first_and_a_settled_one_never() -> None:
    sent: list[str] = []

    async def publish(job: str) -> None:
        sent.append(job)

    notices = RunningNotices(after=0.02)
    notices.add("early", publish, "early")
    notices.add("short", publish, "short")
    notices.add("late", publish, "late")
    assert notices.settle("short") is None  # ends before it is due: never sent
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while len(sent) < 2 and loop.time() < deadline:
        await asyncio.sleep(0.005)
    assert sent == ["early", "late"]
    assert not notices._due and notices._timer is None  # nothing left armed


async def test_a_failed_notice_is_not_the_jobs_failure() -> None:
    async def publish() -> None:
        raise ConnectionError("gone")

    notices = RunningNotices(after=0.0)
    notices.add(1, publish)
    await asyncio.sleep(0.01)
    in_flight = notices.settle(1)
    assert in_flight is not None
    await wait_sent(in_flight)  # does not raise
