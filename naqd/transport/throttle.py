"""The same connection error repeating during an outage (every reconnect attempt, twice a
second) is logged once, then once every 30 s with a count. Standard library only: the
daemon (naqd/transport/connection.py, loguru) and the client (naqd/client/link.py,
logging) share it."""

from __future__ import annotations

import time
from collections.abc import Callable

REPEAT_EVERY = 30.0  # seconds between lines about the same error while it repeats


class ErrorThrottle:
    """The first occurrence of an error is logged, then once every `every` seconds with
    how many were left out; a new error is logged at once."""

    def __init__(
        self, every: float = REPEAT_EVERY, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.every = every
        self.clock = clock
        self.last: dict[str, float] = {}  # error text -> when last logged
        self.skipped: dict[str, int] = {}

    def note(self, text: str) -> int | None:
        """None: leave this one out; else log it, with this many left out since."""
        now = self.clock()
        last = self.last.get(text)
        if last is not None and now - last < self.every:
            self.skipped[text] = self.skipped.get(text, 0) + 1
            return None
        self.last[text] = now
        return self.skipped.pop(text, 0)

    def line(self, text: str) -> str | None:
        """The line to log for `text` now, with the count left out; None to stay quiet."""
        left_out = self.note(text)
        if left_out is None:
            return None
        if left_out:
            return f"{text} (and {left_out} more like it in the last {self.every:g}s)"
        return text

    def reset(self) -> int:
        """Connected again: forget the errors; returns how many were left out."""
        left_out = sum(self.skipped.values())
        self.last.clear()
        self.skipped.clear()
        return left_out
