"""One page of a listing, and how a listing walks a stream backwards by sequence under a
budget: what the console's lists (jobs, dead letters, audit) share."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Stop:
    """Returned by a listing's `keep` when nothing older can match (a `since` passed)."""


STOP = Stop()

# A listing reads at most this many messages, or for this long, per page: a filter that
# matches little returns a short page and a cursor to go on, never a long stall.
SCAN_BUDGET = 5_000
TIME_BUDGET = 0.25


@dataclass
class Page(Generic[T]):
    """`items`, newest first unless the listing says otherwise. `cursor` is opaque: pass
    it back to get the next page; None when nothing is left. `scanned` counts the
    messages read for this page; `partial` is True when the read budget ran out before
    the page filled (more may match past `cursor`). `total` is a count when one is
    cheap to know (for example the queue's depth), else None."""

    items: list[T] = field(default_factory=list)
    cursor: str | None = None
    scanned: int = 0
    partial: bool = False
    total: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": [i.to_dict() if hasattr(i, "to_dict") else i for i in self.items],
            "cursor": self.cursor,
            "scanned": self.scanned,
            "partial": self.partial,
            "total": self.total,
        }


def parse_cursor(cursor: str | None, prefix: str) -> int | None:
    """`<prefix>:<seq>` back to the sequence; ValueError names a foreign or broken one."""
    if cursor is None or cursor == "":
        return None
    head, _, tail = cursor.partition(":")
    if head != prefix or not tail.isdigit():
        raise ValueError(f"invalid cursor {cursor!r} for this listing")
    return int(tail)


WINDOW = 1024  # at most this many sequences per batched request when walking back


async def walk_back(
    fetch: Callable[[int, int], Awaitable[list[Any]]],
    first: int,
    last: int,
    keep: Callable[[Any], T | Stop | None],
    limit: int,
    prefix: str,
    *,
    budget: int = SCAN_BUDGET,
    seconds: float = TIME_BUDGET,
) -> Page[T]:
    """From sequence `last` down to `first`, a window at a time: `fetch(lo, hi)` is the
    stored messages with sequences lo..hi, oldest first (gaps simply absent); `keep(msg)`
    the item, None to skip it, or STOP. Stops at `limit` items or at the budget; the
    cursor then points at the newest message not yet looked at."""
    page: Page[T] = Page()
    deadline = time.monotonic() + seconds
    hi = last
    window = max(limit, 16)  # the first window fits a page with no gaps; then it grows
    while hi >= first:
        if page.scanned >= budget or time.monotonic() > deadline:
            page.partial = True
            break
        lo = max(first, hi - window + 1)
        window = min(WINDOW, window * 4)
        msgs = await fetch(lo, hi)
        for msg in reversed(msgs):
            page.scanned += 1
            item = keep(msg)
            if isinstance(item, Stop):
                return page  # no cursor: nothing older matches
            if item is not None:
                page.items.append(item)
                if len(page.items) >= limit:
                    seq = int(msg.seq or lo) - 1
                    page.cursor = f"{prefix}:{seq}" if seq >= first else None
                    return page
        hi = lo - 1
    page.cursor = f"{prefix}:{hi}" if hi >= first else None
    return page
