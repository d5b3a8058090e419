"""Children stop when the supervisor disappears: they watch its sentinel (a pipe end the
parent holds), not getppid(), which under forkserver names the forkserver."""

from __future__ import annotations

import asyncio
import multiprocessing

from loguru import logger


def watch_parent(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set `stop` when the parent process dies (no-op outside a multiprocessing child)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def on_parent_gone() -> None:
        loop.remove_reader(parent.sentinel)
        logger.warning("supervisor is gone: stopping")
        stop.set()

    loop.add_reader(parent.sentinel, on_parent_gone)
