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

RECANCEL_EVERY = 0.2


async def cancel_until_done(
    tasks: Iterable[asyncio.Future[Any]], timeout: float = 5.0
) -> set[asyncio.Future[Any]]:
    """Cancel `tasks` and wait for them, cancelling again any that swallowed it; the
    ones still running after `timeout` seconds (none: all ended). No logging: the
    client uses it too (its console id index, naqd/client/jobindex.py)."""
    tasks = list(tasks)
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            return pending
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_EVERY, left))
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" noise
    return set()


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], timeout: float = 5.0) -> bool:
    """`cancel_until_done` for the daemon: False (and a warning naming them) if some
    tasks are still running after `timeout` seconds."""
    left = await cancel_until_done(tasks, timeout)
    if left:
        from loguru import logger  # the daemon's side: the client never loads loguru

        logger.warning("tasks still running at shutdown, left behind: {}", left)
        return False
    return True
