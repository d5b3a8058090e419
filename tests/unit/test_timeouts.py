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
