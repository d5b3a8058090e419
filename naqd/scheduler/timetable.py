"""Which schedules are due, without asking croniter on every pass. Pure.

Each schedule keeps its next two ticks after its cursor (`NextTicks`), computed when the
cursor moves; the `Timetable` orders schedules by their next due tick, so the fire loop
sleeps until the soonest one and touches only the schedules that are due. A steady
schedule costs one croniter lookup per fired tick (the tick after the next), none while
it waits.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from datetime import datetime

from naqd.protocol.ticks import Trigger
from naqd.scheduler.cron import MISFIRE_GRACE, Decision, Missed, decide


@dataclass(frozen=True)
class NextTicks:
    """The first tick after `cursor` (`due`) and the one after it (`following`): while
    `following` is still ahead, `due` is the only tick due, so no catch-up lookup."""

    cursor: datetime
    due: datetime
    following: datetime

    @classmethod
    def after(cls, trigger: Trigger, cursor: datetime) -> NextTicks:
        due = trigger.next_after(cursor)
        return cls(cursor, due, trigger.next_after(due))


def next_ticks(trigger: Trigger, cursor: datetime, cached: NextTicks | None) -> NextTicks:
    """The ticks after `cursor`, reusing `cached` when the cursor did not move or moved
    by exactly one tick (the usual fire): then one lookup instead of two."""
    if cached is not None:
        if cached.cursor == cursor:
            return cached
        if cached.due == cursor:
            return NextTicks(cursor, cached.following, trigger.next_after(cached.following))
    return NextTicks.after(trigger, cursor)


def decide_due(
    trigger: Trigger,
    ticks: NextTicks,
    now: datetime,
    missed: Missed,
    grace: float = MISFIRE_GRACE,
) -> Decision:
    """`decide(trigger, ticks.cursor, now, missed)` from the cached ticks: the same
    answer, with croniter asked only when more than one tick came due (a catch-up)."""
    if ticks.due > now:
        return Decision(None, ticks.cursor)
    if ticks.following > now:  # `due` is the latest tick at or before now
        late = (now - ticks.due).total_seconds()
        if late <= grace or missed == "run_once":
            return Decision(ticks.due, ticks.due)
        return Decision(None, ticks.due, skipped=True)
    return decide(trigger, ticks.cursor, now, missed, grace)


class Timetable:
    """Schedule names ordered by when they are next due (Unix seconds). A name taken
    out by `take_due` stays out until it is put back: while its tick is being fired,
    its next tick cannot come due."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str]] = []
        self._at: dict[str, tuple[float, int]] = {}  # the live entry of each name
        self._seq = itertools.count()

    def put(self, name: str, at: float) -> None:
        """Due at `at`; replaces an earlier entry of `name`."""
        seq = next(self._seq)
        self._at[name] = (at, seq)
        heapq.heappush(self._heap, (at, seq, name))
        if len(self._heap) > 2 * len(self._at) + 64:  # many replaced entries: compact
            self._heap = [(a, s, n) for n, (a, s) in self._at.items()]
            heapq.heapify(self._heap)

    def discard(self, name: str) -> None:
        self._at.pop(name, None)

    def clear(self) -> None:
        self._heap.clear()
        self._at.clear()

    def soonest(self) -> float | None:
        """When the first name is due, or None when there is none."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def take_due(self, now: float) -> list[str]:
        """Remove and return the names due at or before `now`, soonest first."""
        taken = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                return taken
            _, _, name = heapq.heappop(self._heap)
            del self._at[name]
            taken.append(name)

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap:
            at, seq, name = heap[0]
            if self._at.get(name) == (at, seq):
                return
            heapq.heappop(heap)

    def __contains__(self, name: object) -> bool:
        return name in self._at

    def __len__(self) -> int:
        return len(self._at)
