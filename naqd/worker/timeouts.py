"""Running a task under its timeout. A coroutine is cancelled; a thread cannot be, so a
timed-out thread is reported stuck and the process recycles itself (docs/delivery.md)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class JobTimeout(TimeoutError):
    """The job ran longer than its timeout (name it in retry_on / dont_retry_on)."""


async def call_async(fn: Callable[..., Any], args: Any, kwargs: Any, timeout: float) -> Any:
    deadline = asyncio.timeout(timeout or None)
    try:
        async with deadline:
            return await fn(*args, **kwargs)
    except TimeoutError:
        if not deadline.expired():
            raise  # the task's own TimeoutError (say, from an HTTP call)
        raise JobTimeout(f"job exceeded its timeout of {timeout:g}s (cancelled)") from None


class ThreadRunner:
    """A pool for plain functions that knows which of its threads are still busy."""

    def __init__(self, size: int, name: str) -> None:
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)
        self.busy: set[Future[Any]] = set()
        self.stuck = 0  # threads that outlived their job's timeout

    async def call(
        self,
        fn: Callable[..., Any],
        args: Any,
        kwargs: Any,
        timeout: float,
        on_stuck: Callable[[], None],
    ) -> Any:
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        fut = self.executor.submit(call)
        self.busy.add(fut)
        fut.add_done_callback(self._done)
        # asyncio.timeout, not wait_for: no extra Task per job on the hot path.
        deadline = asyncio.timeout(timeout or None)
        try:
            async with deadline:
                return await asyncio.wrap_future(fut)
        except TimeoutError:
            if not deadline.expired() or fut.done():
                raise  # the task itself raised TimeoutError
            self.stuck += 1
            on_stuck()
            raise JobTimeout(
                f"job exceeded its timeout of {timeout:g}s; its thread cannot be stopped, "
                "so this worker process recycles itself"
            ) from None

    def _done(self, fut: Future[Any]) -> None:
        self.busy.discard(fut)  # runs in the pool thread; set.discard is atomic

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    @property
    def threads_busy(self) -> bool:
        # tuple() copies in one step: pool threads discard from the set as they finish.
        return any(not f.done() for f in tuple(self.busy))
