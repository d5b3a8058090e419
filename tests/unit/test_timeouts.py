from __future__ import annotations

import asyncio

import pytest

from naqd.worker.timeouts import JobTimeout, call_async


async def test_coroutine_is_cancelled_at_its_timeout() -> None:
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(JobTimeout, match=r"timeout of 0\.05s"):
        await call_async(slow, (), {}, 0.05)
    assert cancelled.is_set()


async def test_a_tasks_own_timeout_error_is_not_a_job_timeout() -> None:
    async def http_call() -> None:
        raise TimeoutError("upstream timed out")

    with pytest.raises(TimeoutError, match="upstream") as info:
        await call_async(http_call, (), {}, 10)
    assert not isinstance(info.value, JobTimeout)


async def test_an_outside_cancel_stays_a_cancel_even_when_the_timeout_also_fires() -> None:
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(30)

    async def job() -> None:
        await call_async(slow, (), {}, 0.05)

    task = asyncio.get_running_loop().create_task(job())
    await started.wait()
    task.cancel()  # e.g. the worker shutting down, before the timeout fires
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_finished_job_leaves_no_timer_and_no_pending_cancel() -> None:
    async def quick() -> int:
        return 7

    assert await call_async(quick, (), {}, 0.05) == 7
    await asyncio.sleep(0.1)  # past the timeout: nothing may fire into this task now
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_no_timeout_means_none() -> None:
    async def quick() -> str:
        return "ok"

    assert await call_async(quick, (), {}, 0) == "ok"
