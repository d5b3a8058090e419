"""The fire loop's cache of next ticks and its timetable: the cached decision is the
same as the full one (DST days included), croniter is asked only when a cursor moves,
and only due schedules come out of the timetable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from naqd.protocol.ticks import Trigger
from naqd.scheduler.cron import decide
from naqd.scheduler.timetable import NextTicks, Timetable, decide_due, next_ticks


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


class CountingTrigger:
    """A Trigger that counts its lookups."""

    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.lookups = 0

    def next_after(self, after: datetime) -> datetime:
        self.lookups += 1
        return self.trigger.next_after(after)


# --- next ticks -------------------------------------------------------------------


def test_next_ticks_reuses_the_cache_when_the_cursor_moves_one_tick() -> None:
    trigger = CountingTrigger(Trigger(cron="*/15 * * * *"))
    ticks = next_ticks(trigger, utc(2026, 1, 1, 0, 7), None)  # type: ignore[arg-type]
    assert (ticks.due, ticks.following) == (utc(2026, 1, 1, 0, 15), utc(2026, 1, 1, 0, 30))
    assert trigger.lookups == 2
    assert next_ticks(trigger, ticks.cursor, ticks) is ticks  # type: ignore[arg-type]
    assert trigger.lookups == 2  # cursor unchanged: no lookup
    moved = next_ticks(trigger, ticks.due, ticks)  # type: ignore[arg-type]
    assert (moved.cursor, moved.due, moved.following) == (
        utc(2026, 1, 1, 0, 15),
        utc(2026, 1, 1, 0, 30),
        utc(2026, 1, 1, 0, 45),
    )
    assert trigger.lookups == 3  # one tick on: one lookup
    jumped = next_ticks(trigger, utc(2026, 1, 1, 5, 1), moved)  # type: ignore[arg-type]
    assert jumped.due == utc(2026, 1, 1, 5, 15) and trigger.lookups == 5


def test_waiting_costs_no_lookup() -> None:
    trigger = CountingTrigger(Trigger(cron="0 3 * * *"))
    ticks = NextTicks.after(trigger, utc(2026, 1, 1, 12))  # type: ignore[arg-type]
    before = trigger.lookups
    for minute in range(0, 15 * 60, 7):  # a long wait, polled often
        now = utc(2026, 1, 1, 12) + timedelta(minutes=minute)
        assert decide_due(trigger, ticks, now, "run_once").tick is None  # type: ignore[arg-type]
    assert trigger.lookups == before


BERLIN = "Europe/Berlin"
TRIGGERS = [
    Trigger(every=60.0),
    Trigger(every=1.5),
    Trigger(cron="*/15 * * * *", timezone=BERLIN),
    Trigger(cron="30 2 * * *", timezone=BERLIN),
    Trigger(cron="0 * * * *", timezone=BERLIN),
    Trigger(cron="10,50 2,3 * * *", timezone=BERLIN),
    Trigger(cron="*/20 * * * * *"),
]


@pytest.mark.parametrize("trigger", TRIGGERS, ids=lambda t: t.cron or f"every {t.every}")
@pytest.mark.parametrize("day", [utc(2026, 3, 28, 23), utc(2026, 10, 24, 23), utc(2026, 6, 1)])
def test_cached_decision_equals_the_full_one(trigger: Trigger, day: datetime) -> None:
    """Cursors on and off the tick sequence, `now` from early to hours late, both
    policies: the cached decision is exactly `decide`'s, across DST changes too."""
    step = timedelta(seconds=0.5) if trigger.every == 1.5 else timedelta(minutes=7)
    cursors = [day + i * step * 3 for i in range(12)]
    cursors += [trigger.next_after(c) for c in cursors]  # on-sequence cursors
    lateness = [0, 0.2, 1.9, 2.1, 30, 61, 600, 3 * 3600]
    for cursor in cursors:
        ticks = NextTicks.after(trigger, cursor)
        for late in lateness:
            for now in (ticks.due + timedelta(seconds=late), ticks.due - timedelta(seconds=1)):
                for missed in ("skip", "run_once"):
                    expected = decide(trigger, cursor, now, missed)
                    assert decide_due(trigger, ticks, now, missed) == expected, (cursor, now)


# --- timetable --------------------------------------------------------------------


def test_only_due_names_come_out_soonest_first() -> None:
    table = Timetable()
    table.put("c", 30.0)
    table.put("a", 10.0)
    table.put("b", 20.0)
    assert table.soonest() == 10.0
    assert table.take_due(5.0) == []
    assert table.take_due(20.0) == ["a", "b"]
    assert "a" not in table and "c" in table and len(table) == 1
    assert table.soonest() == 30.0


def test_a_taken_name_stays_out_until_put_back() -> None:
    """While a tick is being fired, the schedule's next tick cannot come due."""
    table = Timetable()
    table.put("s", 1.0)
    assert table.take_due(100.0) == ["s"]
    assert table.take_due(200.0) == [] and table.soonest() is None
    table.put("s", 150.0)
    assert table.take_due(200.0) == ["s"]


def test_put_replaces_and_discard_removes() -> None:
    table = Timetable()
    table.put("s", 10.0)
    table.put("s", 50.0)  # rescheduled: the old entry must not fire it early
    assert table.soonest() == 50.0
    assert table.take_due(40.0) == []
    table.put("t", 5.0)
    table.discard("t")
    assert table.take_due(60.0) == ["s"]
    assert table.soonest() is None


def test_many_replacements_keep_the_heap_small_and_right() -> None:
    table = Timetable()
    for i in range(10_000):
        table.put(f"s{i % 10}", float(i))
    assert len(table._heap) <= 2 * len(table) + 65
    assert table.take_due(9_989.0) == []  # each name's latest entry is 9990..9999
    assert table.take_due(10_000.0) == [f"s{i}" for i in range(10)]
