"""Stopping background tasks without hanging a shutdown.

On Python 3.11 `asyncio.wait_for` can swallow a cancel that lands just as the awaited
future completes (fixed in 3.12); nats-py awaits every request that way. A task that
loses its cancel like this keeps waiting, and a plain `await task` after `task.cancel()`
then never returns: a scheduler stopped during its start-up hung until SIGKILL. So the
stop path cancels again until the task is done, within a bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from loguru import logger

RECANCEL_EVERY = 0.2


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], timeout: float = 5.0) -> bool:
    """Cancel `tasks` and wait for them, cancelling again any that swallowed it; False
    (and a warning naming them) if some are still running after `timeout` seconds."""
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            logger.warning("tasks still running at shutdown, left behind: {}", pending)
            return False
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_EVERY, left))
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" noise
    return True
