"""The 'running' record of a job, written lazily: most jobs finish before it matters."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

RUNNING_NOTICE_AFTER = 0.05


class RunningNotices:
    """'running' records published only for jobs still running `after` seconds after they
    started, for all the jobs of one runner. Jobs are added in the order they start, so
    the oldest is due first: one loop timer, armed for the oldest job, serves them all (a
    timer, a closure and a settle coroutine per job cost ~3.5 us of a ~40 us stored job).
    `settle(key)` before the final record: a notice already on its way is awaited, so it
    can never land after (and overwrite) the outcome."""

    def __init__(self, after: float = RUNNING_NOTICE_AFTER) -> None:
        self.after = after
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due: dict[Any, tuple[float, Callable[..., Awaitable[None]], tuple[Any, ...]]] = {}
        self._sent: dict[Any, asyncio.Future[None]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, key: Any, publish: Callable[..., Awaitable[None]], *args: Any) -> None:
        """A job started: `publish(*args)` once it has run for `after` seconds."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a runner serves one loop; a new one starts afresh
            self._loop, self._timer = loop, None
            self._due.clear()
        due = loop.time() + self.after
        self._due[key] = (due, publish, args)
        if self._timer is None:
            self._timer = loop.call_at(due, self._fire)

    def settle(self, key: Any) -> asyncio.Future[None] | None:
        """The job ended: no notice from now on. Returns the notice still in flight, if
        one was sent (await it with `wait_sent` before storing the outcome)."""
        if self._due.pop(key, None) is not None:
            return None
        return self._sent.pop(key, None)

    def _fire(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        due = self._due
        while due:
            key = next(iter(due))
            at, publish, args = due[key]
            if at > now:
                self._timer = loop.call_at(at, self._fire)
                return
            del due[key]
            self._sent[key] = asyncio.ensure_future(publish(*args))


async def wait_sent(sent: asyncio.Future[None]) -> None:
    """A notice's publish, awaited; its failure is not the job's (it is informational)."""
    with contextlib.suppress(Exception):
        await sent
