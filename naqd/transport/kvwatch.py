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
    """`kv.watch(keys, ...)` with naqd's inactive threshold."""
    return await kv.watch(keys, inactive_threshold=WATCH_INACTIVE, **options)


async def close_watch(watcher: Any) -> None:
    """Stop the watcher and delete its consumer; never raises (the inactive threshold
    removes the consumer anyway when the delete cannot be sent)."""
    sub = getattr(watcher, "_sub", None)
    with contextlib.suppress(Exception):
        await watcher.stop()
    js, stream, name = (getattr(sub, a, None) for a in ("_js", "_stream", "_consumer"))
    if js is None or not stream or not name:
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(js.delete_consumer(stream, name), DELETE_TIMEOUT)
