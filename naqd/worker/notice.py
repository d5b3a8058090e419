"""The 'running' record of a job, written lazily: most jobs finish before it matters."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

RUNNING_NOTICE_AFTER = 0.05


class RunningNotice:
    """A 'running' record published only if the job is still running after `after`
    seconds. `settle()` before the final record: a notice already on its way is awaited,
    so it can never land after (and overwrite) the outcome."""

    def __init__(
        self, publish: Callable[[], Awaitable[None]], after: float = RUNNING_NOTICE_AFTER
    ) -> None:
        self._publish = publish
        self._task: asyncio.Future[None] | None = None
        self._handle = asyncio.get_running_loop().call_later(after, self._fire)

    def _fire(self) -> None:
        self._task = asyncio.ensure_future(self._publish())

    async def settle(self) -> None:
        self._handle.cancel()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
