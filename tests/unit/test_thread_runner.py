"""ThreadRunner: plain functions on long-lived pool threads (naqd/worker/timeouts.py).
Real threads, no timing asserts: events, barriers and polls with deadlines."""

from __future__ import annotations

import asyncio
import contextvars
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from naqd.worker.timeouts import JobTimeout, ThreadRunner

WAIT = 30.0  # generous: a lost wakeup fails the test instead of hanging it

var: contextvars.ContextVar[str] = contextvars.ContextVar("test_var", default="unset")


def not_stuck() -> None:
    raise AssertionError("on_stuck called for a job that finished")


async def run(pool: ThreadRunner, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # No wait_for: a task started with create_task has queued its job after one
    # sleep(0). A lost wakeup hangs until pytest-timeout fails the test.
    return await pool.call(fn, args, kwargs, 60.0, not_stuck)


async def until(predicate: Callable[[], object], what: str) -> None:
    """Poll with a deadline, letting the loop run (it completes the jobs)."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT}s waiting for {what}")
        await asyncio.sleep(0.01)


def pool_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"{name}_")]


class Blocker:
    """Jobs that block until released, counting how many run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def __call__(self) -> str:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            if not self.release.wait(WAIT):
                raise AssertionError("never released")
            return threading.current_thread().name
        finally:
            with self.lock:
                self.running -= 1


async def test_results_and_errors_come_back_from_a_pool_thread() -> None:
    pool = ThreadRunner(4, "tr-basic")
    assert pool_threads("tr-basic") == []  # threads start with the first job
    assert await run(pool, lambda a, b: a + b, 1, b=2) == 3
    name = await run(pool, lambda: threading.current_thread().name)
    assert name.startswith("tr-basic_") and name != threading.main_thread().name

    def fail() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        await run(pool, fail)
    pool.shutdown()


async def test_a_tasks_own_timeout_error_passes_through() -> None:
    pool = ThreadRunner(2, "tr-own-timeout")

    def http_call() -> None:
        raise TimeoutError("upstream timed out")

    with pytest.raises(TimeoutError, match="upstream") as info:
        await pool.call(http_call, (), {}, 10, not_stuck)
    assert not isinstance(info.value, JobTimeout) and pool.stuck == 0
    pool.shutdown()


async def test_stop_iteration_fails_the_job_instead_of_hanging_it() -> None:
    pool = ThreadRunner(1, "tr-stopiter")

    def stop() -> None:
        raise StopIteration

    with pytest.raises(RuntimeError, match="StopIteration"):
        await run(pool, stop)
    pool.shutdown()


async def test_each_job_sees_its_callers_context_and_nothing_leaks_between_jobs() -> None:
    pool = ThreadRunner(2, "tr-context")

    def read_then_set() -> str:
        seen = var.get()
        var.set("set in the thread")
        return seen

    async def job(i: int) -> str:
        var.set(f"job-{i}")
        return await run(pool, read_then_set)

    # Tasks each have their own context; the same threads run job after job.
    assert await asyncio.gather(*(job(i) for i in range(50))) == [f"job-{i}" for i in range(50)]
    assert await run(pool, read_then_set) == "unset"  # a copy each time, never reused
    assert var.get() == "unset"  # and the thread's writes never come back
    pool.shutdown()


async def test_size_blocking_jobs_run_in_parallel() -> None:
    size = 6
    pool = ThreadRunner(size, "tr-parallel")
    barrier = threading.Barrier(size, timeout=WAIT)  # breaks unless all six run at once
    names = await asyncio.gather(
        *(
            run(pool, lambda: (barrier.wait(), threading.current_thread().name)[1])
            for _ in range(size)
        )
    )
    assert len(set(names)) == size
    pool.shutdown()


async def test_never_more_than_size_jobs_or_threads_at_once() -> None:
    pool = ThreadRunner(3, "tr-bounded")
    blocker = Blocker()
    calls = [asyncio.create_task(run(pool, blocker)) for _ in range(12)]
    await asyncio.sleep(0)  # every call has queued its job
    await until(lambda: blocker.running == 3, "3 jobs running")
    assert len(pool_threads("tr-bounded")) == 3
    blocker.release.set()
    names = await asyncio.gather(*calls)
    assert blocker.peak == 3 and len(set(names)) == 3
    pool.shutdown()


async def test_many_jobs_from_many_callers_all_complete() -> None:
    # Bursts and trickles, short and blocking jobs: parks and wakeups in every order.
    pool = ThreadRunner(8, "tr-stress")
    rng = random.Random(6)

    def work(i: int, pause: float) -> int:
        if pause:
            time.sleep(pause)
        return i * 2

    async def caller(start: int) -> list[int]:
        out = []
        for i in range(start, start + 40):
            if rng.random() < 0.2:
                await asyncio.sleep(0)
            out.append(await run(pool, work, i, rng.choice((0, 0, 0, 0.0005))))
        return out

    results = await asyncio.gather(*(caller(c * 40) for c in range(64)))
    assert [x for r in results for x in r] == [i * 2 for i in range(64 * 40)]
    assert len(pool_threads("tr-stress")) <= 8
    pool.shutdown()


async def test_thread_past_its_timeout_is_reported_stuck() -> None:
    release = threading.Event()
    stuck: list[bool] = []
    pool = ThreadRunner(2, "t")
    with pytest.raises(JobTimeout, match="recycles itself"):
        await pool.call(release.wait, (30,), {}, 0.05, lambda: stuck.append(True))
    assert stuck == [True] and pool.stuck == 1 and pool.threads_busy
    release.set()
    assert await pool.call(lambda a, b: a + b, (1, 2), {}, 5, lambda: None) == 3
    await until(lambda: not pool.threads_busy, "the stuck thread to finish")
    pool.shutdown()


async def test_a_job_queued_behind_a_stuck_thread_times_out_and_never_runs() -> None:
    pool = ThreadRunner(1, "tr-queued-timeout")
    release = threading.Event()
    stuck: list[bool] = []
    with pytest.raises(JobTimeout, match="recycles itself"):
        await pool.call(release.wait, (WAIT,), {}, 0.05, lambda: stuck.append(True))
    ran: list[bool] = []
    with pytest.raises(JobTimeout, match="waiting for a free thread"):
        await pool.call(lambda: ran.append(True), (), {}, 0.05, lambda: stuck.append(True))
    assert stuck == [True]  # only the job that holds a thread is stuck
    release.set()
    assert await run(pool, lambda: "next") == "next"
    assert ran == []
    pool.shutdown()


async def test_a_cancelled_caller_whose_job_waits_for_a_thread_never_runs_it() -> None:
    pool = ThreadRunner(1, "tr-cancel-queued")
    blocker = Blocker()
    first = asyncio.create_task(run(pool, blocker))
    await until(lambda: blocker.running == 1, "the first job running")
    ran: list[bool] = []
    second = asyncio.create_task(run(pool, lambda: ran.append(True)))
    await asyncio.sleep(0)  # its job is queued behind the first
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    blocker.release.set()
    await first
    assert await run(pool, lambda: "third") == "third"  # runs after the second's turn
    assert ran == []
    pool.shutdown()


async def test_a_cancelled_caller_leaves_its_running_thread_busy_until_it_ends() -> None:
    pool = ThreadRunner(2, "tr-cancel-running")
    blocker = Blocker()
    call = asyncio.create_task(run(pool, blocker))
    await until(lambda: blocker.running == 1, "the job running")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert pool.threads_busy  # Python cannot stop the thread
    blocker.release.set()
    await until(lambda: not pool.threads_busy, "the thread to finish")
    assert await run(pool, lambda: "after") == "after"
    pool.shutdown()


async def test_shutdown_drops_queued_jobs_and_lets_idle_threads_exit() -> None:
    pool = ThreadRunner(1, "tr-shutdown")
    blocker = Blocker()
    first = asyncio.create_task(run(pool, blocker))
    await until(lambda: blocker.running == 1, "the first job running")
    ran: list[bool] = []
    queued = asyncio.create_task(run(pool, lambda: ran.append(True)))
    await asyncio.sleep(0)
    pool.shutdown()
    with pytest.raises(asyncio.CancelledError):
        await queued
    with pytest.raises(RuntimeError, match="shut down"):
        await run(pool, lambda: None)
    assert pool.threads_busy  # the running job goes on (no wait in shutdown)
    blocker.release.set()
    await first  # and its result still comes back
    await until(lambda: not pool_threads("tr-shutdown"), "pool threads to exit")
    assert ran == [] and not pool.threads_busy


async def test_idle_threads_exit_at_shutdown() -> None:
    pool = ThreadRunner(4, "tr-idle-exit")
    blocker = Blocker()
    calls = [asyncio.create_task(run(pool, blocker)) for _ in range(4)]
    await until(lambda: blocker.running == 4, "4 jobs running")
    blocker.release.set()
    await asyncio.gather(*calls)
    assert len(pool_threads("tr-idle-exit")) == 4
    pool.shutdown()
    await until(lambda: not pool_threads("tr-idle-exit"), "pool threads to exit")
