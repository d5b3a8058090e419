"""RunningNotice: a short job never writes 'running'; a long one does, before its outcome."""

from __future__ import annotations

import asyncio

from naqd.worker.notice import RunningNotice


async def test_short_job_publishes_nothing() -> None:
    sent: list[str] = []

    async def publish() -> None:
        sent.append("running")

    notice = RunningNotice(publish, after=60)
    await notice.settle()  # the job ended before the notice was due
    assert notice._handle.cancelled() and notice._task is None and sent == []


async def test_long_job_publishes_once_and_settle_waits_for_it() -> None:
    sent: list[str] = []
    release = asyncio.Event()

    async def publish() -> None:
        await release.wait()  # a publish still in flight when the job ends
        sent.append("running")

    notice = RunningNotice(publish, after=0.0)
    await asyncio.sleep(0.01)  # let the timer fire
    settling = asyncio.ensure_future(notice.settle())
    await asyncio.sleep(0.01)
    assert not settling.done()  # the outcome must wait for the notice in flight
    release.set()
    await settling
    assert sent == ["running"]
