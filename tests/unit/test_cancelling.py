"""cancel_and_wait: a task that loses a cancel (Python 3.11's wait_for race) still stops."""

from __future__ import annotations

import asyncio
import contextlib

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


async def test_the_console_id_index_stops_though_its_task_swallowed_the_cancel() -> None:
    """JobIndex.stop awaited its task once after cancel(): when a request's wait_for
    swallowed the cancel (Python 3.11) the console's stop hung, and its process outlived
    the daemon (found as an orphaned `naqd: dashboard` after a test run)."""
    from naqd.client.jobindex import JobIndex

    async def refreshes_on() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # the swallowed cancel
            await asyncio.Event().wait()
        while True:  # the index's loop: refresh, sleep, refresh...
            await asyncio.sleep(0.05)

    loop = asyncio.get_running_loop()
    index = JobIndex.__new__(JobIndex)  # no connection needed to stop a task
    index._task = task = loop.create_task(refreshes_on())
    await asyncio.sleep(0)
    stopping = loop.create_task(index.stop())
    done, _ = await asyncio.wait({stopping}, timeout=4)  # waits, never cancels it
    if not done:
        stopping.cancel()
        task.cancel()
    assert done, "JobIndex.stop hung on a task that swallowed its cancel"
    assert task.cancelled()
