from __future__ import annotations

import asyncio
import contextlib

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


async def test_a_job_that_waits_goes_on_in_the_same_task_with_its_context() -> None:
    """The first step runs by hand (no timer for a job that never waits); after it, the
    job goes on in the caller's task: current_task(), contextvars and results unchanged."""
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="")
    outer = asyncio.current_task()
    seen: list[object] = []

    async def waits() -> str:
        var.set("set in step 1")
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)  # a bare yield
        seen.append(asyncio.current_task())
        await asyncio.sleep(0.001)  # a future
        await asyncio.sleep(0.001)
        seen.append(var.get())
        return "done"

    assert await call_async(waits, (), {}, 5) == "done"
    assert seen == [outer, outer, "set in step 1"]


async def test_a_job_that_swallows_a_cancel_and_goes_on_is_not_a_timeout() -> None:
    async def stubborn() -> str:
        with contextlib.suppress(asyncio.CancelledError):  # as asyncio.timeout would not
            await asyncio.sleep(30)
        await asyncio.sleep(0.001)
        return "finished anyway"

    task = asyncio.current_task()
    assert task is not None
    assert await call_async(stubborn, (), {}, 0.05) == "finished anyway"
    task.uncancel()  # what the swallowed cancel left on this task


async def test_an_error_after_the_first_wait_propagates() -> None:
    async def fails_later() -> None:
        await asyncio.sleep(0.001)
        raise ValueError("late")

    with pytest.raises(ValueError, match="late"):
        await call_async(fails_later, (), {}, 5)


async def test_an_awaitable_that_is_not_a_coroutine_is_awaited_under_the_timeout() -> None:
    def returns_future() -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.001, fut.set_result, 3)
        return fut

    assert await call_async(returns_future, (), {}, 5) == 3
    with pytest.raises(JobTimeout):
        await call_async(lambda: asyncio.get_running_loop().create_future(), (), {}, 0.05)
