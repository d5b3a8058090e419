"""cancel_and_wait: a task that loses a cancel (Python 3.11's wait_for race) still stops."""

from __future__ import annotations

import asyncio

from naqd.transport.cancelling import cancel_and_wait


async def test_a_task_that_swallowed_its_cancel_is_cancelled_again() -> None:
    swallowed = asyncio.Event()

    async def swallows_once() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()  # what a wait_for that lost the race amounts to
        await asyncio.Event().wait()  # waits again, for nothing

    task = asyncio.get_running_loop().create_task(swallows_once())
    await asyncio.sleep(0)
    assert await cancel_and_wait([task], timeout=5.0)
    assert swallowed.is_set() and task.cancelled()


async def test_a_task_that_never_stops_is_left_behind_after_the_timeout() -> None:
    async def stubborn() -> None:
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                continue

    task = asyncio.get_running_loop().create_task(stubborn())
    await asyncio.sleep(0)
    assert not await cancel_and_wait([task], timeout=0.3)
    assert not task.done()
    task.get_coro().close()  # type: ignore[union-attr]


async def test_finished_and_failed_tasks_are_fine() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    loop = asyncio.get_running_loop()
    done = loop.create_task(asyncio.sleep(0))
    failed = loop.create_task(fails())
    await asyncio.sleep(0.01)
    assert await cancel_and_wait([done, failed])
