"""Running a task under its timeout. A coroutine is cancelled; a thread cannot be, so a
timed-out thread is reported stuck and the process recycles itself (docs/delivery.md)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import types
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from contextvars import Context, copy_context
from types import CoroutineType
from typing import Any

from naqd.worker.deadlines import Deadlines


class JobTimeout(TimeoutError):
    """The job ran longer than its timeout (name it in retry_on / dont_retry_on)."""


async def call_async(
    fn: Callable[..., Any],
    args: Any,
    kwargs: Any,
    timeout: float,
    task: asyncio.Task[Any] | None = None,
) -> Any:
    """Await the job, cancelled after `timeout` seconds (0: never). Its first step runs
    here, in this task: a job that finishes without waiting (it cannot be interrupted
    then anyway) needs no timer at all; one that waits gets one loop timer for what is
    left of its timeout, and goes on in this task (`_resume`). No context-manager object:
    asyncio.timeout cost ~15% of a short coroutine job, the timer itself ~0.7 us.
    `task` is the running task (the caller has it at hand). Same rule as asyncio.timeout:
    a CancelledError is ours only if nobody else cancelled as well."""
    if not timeout:
        return await fn(*args, **kwargs)
    if task is None:
        task = asyncio.current_task()
        assert task is not None
    loop = task.get_loop()
    deadline = loop.time() + timeout
    coro = fn(*args, **kwargs)
    if type(coro) is not CoroutineType:  # an awaitable of another kind: awaited as is
        waiting: Any = _NOT_STARTED
    else:
        try:
            waiting = coro.send(None)
        except StopIteration as done:
            return done.value
    before = task.cancelling()
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    handle = loop.call_at(deadline, expire)
    try:
        if waiting is _NOT_STARTED:
            return await coro
        return await _resume(coro, waiting)
    except asyncio.CancelledError:
        if expired and task.uncancel() <= before:
            raise JobTimeout(f"job exceeded its timeout of {timeout:g}s (cancelled)") from None
        raise
    finally:
        handle.cancel()


_NOT_STARTED = object()


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], waiting: Any) -> Generator[Any, Any, Any]:
    """Go on with a coroutine whose first step, run by hand, yielded `waiting` (what it
    waits for): hand that to the task, as the coroutine's own await would have, then
    delegate to the coroutine (`yield from` its awaiter, in C: awaiting a coroutine that
    is suspended is refused). A cancel that lands meanwhile is thrown into it, as the task
    would have."""
    while True:
        try:
            yield waiting
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                waiting = coro.throw(exc)
            except StopIteration as done:
                return done.value
            continue
        return (yield from coro.__await__())


class _Expired(Exception):
    """Set on a job's future by its timer: the thread may still be running it."""


class _Job:
    __slots__ = ("args", "ctx", "fn", "fut", "kwargs", "started")

    def __init__(
        self, fut: asyncio.Future[Any], ctx: Context, fn: Callable[..., Any], args: Any, kwargs: Any
    ) -> None:
        self.fut = fut
        self.ctx = ctx
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.started = False


class _Thread:
    """One pool thread: the lock it parks on while idle, and the job it runs."""

    __slots__ = ("job", "park")

    def __init__(self) -> None:
        self.park = threading.Lock()
        self.park.acquire()  # held while running: a waker releases it to unpark
        self.job: _Job | None = None


class ThreadRunner:
    """Runs plain functions in up to `size` threads, knows which are still busy.

    Cheaper than ThreadPoolExecutor + wrap_future (about one GIL hand-off per batch,
    not several per job): jobs go on one deque; a thread that finishes a job takes the
    next without parking while there is work; an idle thread is woken only when no other
    thread is already on its way to the deque (one "searching" thread at a time, which
    wakes the next if work is left, so blocked I/O tasks still spread over `size`
    threads). Results come back on one completion deque, drained on the loop by a single
    call_soon_threadsafe per batch. A job with a timeout gets one loop timer.
    """

    def __init__(self, size: int, name: str) -> None:
        self.size = max(1, size)
        self.name = name
        self.stuck = 0  # threads that outlived their job's timeout
        self._jobs: deque[_Job] = deque()
        self._results: deque[tuple[asyncio.Future[Any], bool, Any]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_pending = False  # a _complete call is scheduled on the loop
        self._mu = threading.Lock()  # guards _idle, _searching, _threads, _closed
        self._idle: list[_Thread] = []  # parked threads, most recent last
        self._threads: list[_Thread] = []
        self._searching = 0  # threads woken (or started) that have not taken a job yet
        self._closed = False
        self._deadlines = Deadlines()  # the jobs' timeouts, one loop timer for all

    async def call(
        self,
        fn: Callable[..., Any],
        args: Any,
        kwargs: Any,
        timeout: float,
        on_stuck: Callable[[], None],
    ) -> Any:
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._closed:
            self._bind(loop)
        fut = loop.create_future()
        job = _Job(fut, copy_context(), fn, args, kwargs)
        self._jobs.append(job)
        if not self._searching:
            try:
                self._wake()
            except BaseException:
                with contextlib.suppress(ValueError):
                    self._jobs.remove(job)
                raise
        if timeout:
            self._deadlines.add(loop, job, timeout, _expire, fut)
        try:
            return await fut
        except _Expired:
            if job.started:
                self.stuck += 1
                on_stuck()
                raise JobTimeout(
                    f"job exceeded its timeout of {timeout:g}s; its thread cannot be "
                    "stopped, so this worker process recycles itself"
                ) from None
            raise JobTimeout(
                f"job exceeded its timeout of {timeout:g}s waiting for a free thread"
            ) from None
        finally:
            if timeout:
                self._deadlines.remove(job, timeout)

    def shutdown(self) -> None:
        """Drop the jobs not started (their callers get CancelledError) and let idle
        threads exit; running ones finish their job and exit (no wait)."""
        with self._mu:
            self._closed = True
            idle, self._idle = self._idle, []
            for t in idle:
                t.park.release()
        while True:
            try:
                job = self._jobs.popleft()
            except IndexError:
                break
            with contextlib.suppress(RuntimeError):  # its loop is closed
                job.fut.get_loop().call_soon_threadsafe(job.fut.cancel)

    @property
    def threads_busy(self) -> bool:
        return any(t.job is not None for t in tuple(self._threads))

    # -- loop side ----------------------------------------------------------------------

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._closed:
            raise RuntimeError("cannot run a job after the thread pool was shut down")
        if self._loop is not None and (self._jobs or self.threads_busy or self._results):
            raise RuntimeError("a ThreadRunner serves one event loop at a time")
        self._loop = loop
        self._wake_pending = False

    def _complete(self) -> None:
        """Runs on the loop: hand every finished job's outcome to its waiting coroutine."""
        self._wake_pending = False  # before draining: a result added later wakes us again
        results = self._results
        while results:
            fut, ok, value = results.popleft()
            if fut.done():
                continue  # timed out or cancelled meanwhile
            if ok:
                fut.set_result(value)
            elif isinstance(value, StopIteration):
                # A future cannot carry StopIteration (it would end the awaiting coroutine).
                fut.set_exception(RuntimeError(f"task raised StopIteration: {value}"))
            else:
                fut.set_exception(value)

    # -- waking threads (any thread) ----------------------------------------------------

    def _wake(self) -> None:
        with self._mu:
            self._wake_locked()

    def _wake_locked(self) -> None:
        """Put one more thread on the way to the deque, unless one already is."""
        if self._searching or not self._jobs or self._closed:
            return
        if self._idle:
            self._searching += 1
            self._idle.pop().park.release()
        elif len(self._threads) < self.size:
            t = _Thread()
            thread = threading.Thread(
                target=self._work,
                args=(t,),
                name=f"{self.name}_{len(self._threads)}",
                daemon=True,  # a stuck task never holds up the process's exit
            )
            thread.start()  # raises if the OS refuses: the caller's job fails with it
            self._searching += 1
            self._threads.append(t)
        # else every thread is running a job: each takes the next when it is done.

    # -- pool threads -------------------------------------------------------------------

    def _work(self, me: _Thread) -> None:
        jobs = self._jobs
        searching = True  # started by a waker, which counted us as searching
        while True:
            try:
                job = jobs.popleft()
            except IndexError:
                if not self._park(me, searching):
                    return
                searching = True
                continue
            if searching:
                searching = False
                with self._mu:
                    self._searching -= 1
                    if jobs:
                        # More work: the next thread joins in (if none can start, the
                        # running ones take it in turn).
                        with contextlib.suppress(RuntimeError):
                            self._wake_locked()
            self._run(me, job)

    def _run(self, me: _Thread, job: _Job) -> None:
        job.started = True
        fut = job.fut
        if fut.done():
            return  # cancelled, or timed out while it waited for a thread
        me.job = job
        try:
            outcome = (fut, True, job.ctx.run(job.fn, *job.args, **job.kwargs))
        except BaseException as exc:  # the awaiting coroutine decides what it means
            outcome = (fut, False, exc)
        me.job = None
        self._results.append(outcome)
        if not self._wake_pending:
            # Only the first result of a batch wakes the loop; _complete takes them all.
            self._wake_pending = True
            loop = self._loop
            if loop is not None:
                with contextlib.suppress(RuntimeError):  # closed: nobody is waiting
                    loop.call_soon_threadsafe(self._complete)

    def _park(self, me: _Thread, searching: bool) -> bool:
        """Wait for work; False once the pool is shut down. Returns counted as searching."""
        with self._mu:
            if searching:
                self._searching -= 1
            if self._closed:
                return False
            self._idle.append(me)
        if self._jobs:
            # Work came after our look at the deque, maybe while we still counted as
            # searching (so nobody was woken for it): take it ourselves.
            with self._mu:
                if me in self._idle:
                    self._idle.remove(me)
                    self._searching += 1
                    return True
            # A waker took us off the idle list: its release is on the way.
        me.park.acquire()
        return not self._closed


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(_Expired())
