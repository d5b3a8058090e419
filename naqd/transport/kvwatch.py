"""KV watches that leave no consumer behind.

A nats-py `kv.watch()` is an ordered push consumer that the server keeps for 5 minutes
after its subscriber is gone (nats-py's default inactive threshold). naqd opens watches
every minute in every worker (the cancel resync) and in the scheduler, so those leftovers
added up to ~5 consumers per child. Here a watch gets a short inactive threshold (the
server removes it soon after a crash) and a clean stop deletes its consumer at once."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

# Seconds without a subscriber before the server deletes a watch's consumer. A live watch
# always has its subscriber; across a longer disconnect nats-py recreates the consumer.
WATCH_INACTIVE = 10.0
DELETE_TIMEOUT = 2.0


async def open_watch(kv: Any, keys: str, **options: Any) -> Any:
    """`kv.watch(keys, ...)` with naqd's inactive threshold.

    A cancel that lands while the server creates the consumer (a scheduler stopped just
    after its start) would leave a consumer nobody closes: the open is finished, the new
    watch closed, and only then the cancel raised."""
    opening = asyncio.ensure_future(kv.watch(keys, inactive_threshold=WATCH_INACTIVE, **options))
    if await _finish(opening):
        if not opening.cancelled() and opening.exception() is None:
            await _finish(asyncio.ensure_future(_close(opening.result())))
        raise asyncio.CancelledError
    return opening.result()


async def close_watch(watcher: Any) -> None:
    """Stop the watcher and delete its consumer; never raises (the inactive threshold
    removes the consumer anyway when the delete cannot be sent).

    A watch is usually closed from the `finally` of a task being cancelled, and
    transport/cancelling.py cancels again every 0.2 s: a close cut off there leaves its
    consumer for WATCH_INACTIVE. So the close runs to its end (each step bounded by
    DELETE_TIMEOUT) and a cancel that came meanwhile is raised after it."""
    if await _finish(asyncio.ensure_future(_close(watcher))):
        raise asyncio.CancelledError


async def _finish(step: asyncio.Future[Any]) -> bool:
    """Wait for `step` to end whatever cancels the caller meanwhile; True if it was
    cancelled (the caller raises that once it has cleaned up)."""
    cancelled = False
    while not step.done():
        try:
            await asyncio.wait({step})
        except asyncio.CancelledError:
            cancelled = True
    return cancelled


async def _close(watcher: Any) -> None:
    sub = getattr(watcher, "_sub", None)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(watcher.stop(), DELETE_TIMEOUT)
    js, stream, name = (getattr(sub, a, None) for a in ("_js", "_stream", "_consumer"))
    if js is None or not stream or not name:
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(js.delete_consumer(stream, name), DELETE_TIMEOUT)
