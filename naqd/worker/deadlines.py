"""Per-job deadlines on one loop timer: a job's timeout is the same few delays over and
over, and entries of one delay fall due in the order they were added, so only the
oldest of each delay can be next. A loop timer per job cost ~0.7 us to arm and cancel
(uvloop), most of a sync job's hand-off to its thread (docs/performance.md)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Hashable
from typing import Any


class Deadlines:
    """`add(key, delay, fn, *args)`: `fn(*args)` runs on the loop `delay` seconds from now
    unless `remove(key, delay)` came first. One loop at a time: entries of a loop that
    is gone are dropped when another one adds."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._by_delay: dict[float, dict[Hashable, tuple[float, Callable[..., Any], Any]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._at = math.inf

    def add(
        self,
        loop: asyncio.AbstractEventLoop,
        key: Hashable,
        delay: float,
        fn: Callable[..., Any],
        *args: Any,
    ) -> None:
        if loop is not self._loop:
            self._loop, self._by_delay, self._timer, self._at = loop, {}, None, math.inf
        due = loop.time() + delay
        entries = self._by_delay.get(delay)
        if entries is None:
            entries = self._by_delay[delay] = {}
        entries[key] = (due, fn, args)
        if due < self._at:
            self._arm(due)

    def remove(self, key: Hashable, delay: float) -> None:
        entries = self._by_delay.get(delay)
        if entries is not None:
            entries.pop(key, None)

    def _arm(self, due: float) -> None:
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
        self._at = due
        self._timer = self._loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer, self._at = None, math.inf
        loop = self._loop
        assert loop is not None
        now = loop.time()
        later = math.inf
        for delay, entries in list(self._by_delay.items()):
            while entries:
                key = next(iter(entries))
                due, fn, args = entries[key]
                if due > now:
                    later = min(later, due)
                    break
                del entries[key]
                try:
                    fn(*args)
                except Exception as exc:  # as a loop callback's error would be
                    loop.call_exception_handler(
                        {"message": "deadline callback failed", "exception": exc}
                    )
            if not entries and self._by_delay.get(delay) is entries:
                del self._by_delay[delay]
        if later < self._at:
            self._arm(later)
