"""naqd.testing.job_context: a task called directly sees a job context, no server."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

import naqd
from naqd.testing import job_context


async def resize(n: int) -> str:
    job = naqd.current_job()
    for i in range(n):
        await asyncio.sleep(0)
        job.progress((i + 1) / n, f"{i + 1}/{n}")
    return f"{job.id} {job.task} {job.queue} attempt {job.attempt}"


async def test_an_async_task_sees_its_context_and_records_progress() -> None:
    with job_context(job_id="j-1", task="app:resize", queue="images", attempt=2) as job:
        assert await resize(2) == "j-1 app:resize images attempt 2"
    assert job.progress_reports == [(0.5, "1/2"), (1.0, "2/2")]
    assert job.last_progress == (1.0, "2/2")
    with pytest.raises(RuntimeError, match="outside a running naqd job"):
        naqd.current_job()


def test_threads_started_with_the_context_see_it_and_contexts_nest() -> None:
    seen: list[str] = []
    with job_context(job_id="outer"):
        with job_context(job_id="inner"):
            ctx = contextvars.copy_context()
            t = threading.Thread(target=ctx.run, args=(lambda: seen.append(naqd.current_job().id),))
            t.start()
            t.join()
        assert naqd.current_job().id == "outer"
    assert seen == ["inner"]


def test_progress_is_checked_as_in_a_worker() -> None:
    with job_context() as job:
        with pytest.raises(ValueError):
            job.progress(1.5)
        with pytest.raises(TypeError):
            job.progress("half")  # type: ignore[arg-type]
        assert not job.cancelled
        job.cancel()
        assert job.cancelled
        with pytest.raises(naqd.JobCancelled):
            job.raise_if_cancelled()
    assert job.progress_reports == []
    with pytest.raises(ValueError, match="attempt"), job_context(attempt=0):
        pass
