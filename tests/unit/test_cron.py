"""Cron and interval math, the missed-tick policy and tick ids, as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from naqd.protocol.ticks import Trigger, manual_job_id, parse_stamp, tick_job_id, tick_stamp
from naqd.scheduler.cron import decide, jitter_offset


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def fires(trigger: Trigger, after: datetime, n: int) -> list[datetime]:
    out, t = [], after
    for _ in range(n):
        t = trigger.next_after(t)
        out.append(t)
    return out


BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


@pytest.mark.parametrize(
    ("cron", "tz", "after", "expected"),
    [
        # plain UTC, 5 fields
        ("0 3 * * *", "UTC", utc(2026, 1, 1, 12), [utc(2026, 1, 2, 3), utc(2026, 1, 3, 3)]),
        (
            "*/15 * * * *",
            "UTC",
            utc(2026, 1, 1, 0, 7),
            [utc(2026, 1, 1, 0, 15), utc(2026, 1, 1, 0, 30)],
        ),
        # strictly after: a tick equal to `after` is not returned again
        ("0 3 * * *", "UTC", utc(2026, 1, 2, 3), [utc(2026, 1, 3, 3)]),
        # 6 fields: seconds first
        ("30 0 3 * * *", "UTC", utc(2026, 1, 1), [utc(2026, 1, 1, 3, 0, 30)]),
        (
            "*/20 * * * * *",
            "UTC",
            utc(2026, 1, 1, 0, 0, 5),
            [utc(2026, 1, 1, 0, 0, 20), utc(2026, 1, 1, 0, 0, 40), utc(2026, 1, 1, 0, 1)],
        ),
        # time zones: 09:00 in Berlin is 08:00 UTC in winter, 07:00 UTC in summer
        ("0 9 * * *", BERLIN, utc(2026, 1, 15), [utc(2026, 1, 15, 8)]),
        ("0 9 * * *", BERLIN, utc(2026, 7, 15), [utc(2026, 7, 15, 7)]),
        ("0 9 * * *", NEW_YORK, utc(2026, 7, 15), [utc(2026, 7, 15, 13)]),
        # month ends: the 31st skips short months; "L" = last day of the month
        ("0 0 31 * *", "UTC", utc(2026, 1, 31, 1), [utc(2026, 3, 31), utc(2026, 5, 31)]),
        ("0 0 L * *", "UTC", utc(2026, 1, 31, 1), [utc(2026, 2, 28), utc(2026, 3, 31)]),
        ("0 0 29 2 *", "UTC", utc(2026, 1, 1), [utc(2028, 2, 29)]),  # leap day only
        ("0 12 L * *", BERLIN, utc(2028, 2, 1), [utc(2028, 2, 29, 11)]),
        # spring forward (Berlin 2026-03-29 02:00 -> 03:00): 02:30 runs once, at 03:30 CEST
        (
            "30 2 * * *",
            BERLIN,
            utc(2026, 3, 28, 12),
            [utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)],
        ),
        # ... and a time after the gap is unaffected
        (
            "30 3 * * *",
            BERLIN,
            utc(2026, 3, 28, 12),
            [utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 1, 30)],
        ),
        # fall back (Berlin 2026-10-25 03:00 CEST -> 02:00 CET): 02:30 runs once (first pass)
        (
            "30 2 * * *",
            BERLIN,
            utc(2026, 10, 24, 12),
            [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
        ),
        # hourly across fall back: wall-clock times once each (02:00 CET repeat skipped)
        (
            "0 * * * *",
            BERLIN,
            utc(2026, 10, 24, 23, 30),
            [utc(2026, 10, 25, 0), utc(2026, 10, 25, 2), utc(2026, 10, 25, 3)],
        ),
        # every 15 min across spring forward: the gap does not double-fire 03:00-03:45
        (
            "*/15 * * * *",
            BERLIN,
            utc(2026, 3, 29, 0, 30),
            [utc(2026, 3, 29, 0, 45), utc(2026, 3, 29, 1), utc(2026, 3, 29, 1, 15)],
        ),
        # New York spring forward 2026-03-08 02:00 -> 03:00: 02:30 -> 03:30 EDT = 07:30 UTC
        (
            "30 2 * * *",
            NEW_YORK,
            utc(2026, 3, 7, 12),
            [utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)],
        ),
        # New York fall back 2026-11-01: 01:30 happens twice, runs on the first (EDT)
        (
            "30 1 * * *",
            NEW_YORK,
            utc(2026, 10, 31, 12),
            [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
        ),
        ("@daily", "UTC", utc(2026, 1, 1, 5), [utc(2026, 1, 2)]),
    ],
)
def test_cron_next_fire_times(
    cron: str, tz: str, after: datetime, expected: list[datetime]
) -> None:
    assert fires(Trigger(cron=cron, timezone=tz), after, len(expected)) == expected


@pytest.mark.parametrize(
    ("every", "after", "expected"),
    [
        (1.0, utc(2026, 1, 1, 0, 0, 0), [utc(2026, 1, 1, 0, 0, 1), utc(2026, 1, 1, 0, 0, 2)]),
        (60.0, utc(2026, 1, 1, 0, 0, 30), [utc(2026, 1, 1, 0, 1), utc(2026, 1, 1, 0, 2)]),
        # aligned to the epoch: every host computes the same ticks
        (7.0, utc(1970, 1, 1, 0, 0, 20), [utc(1970, 1, 1, 0, 0, 21), utc(1970, 1, 1, 0, 0, 28)]),
        (
            1.5,
            utc(1970, 1, 1),
            [utc(1970, 1, 1) + timedelta(seconds=1.5), utc(1970, 1, 1, 0, 0, 3)],
        ),
    ],
)
def test_every_fire_times(every: float, after: datetime, expected: list[datetime]) -> None:
    assert fires(Trigger(every=every), after, len(expected)) == expected


@pytest.mark.parametrize(
    ("cron", "tz", "now", "expected"),
    [
        ("0 3 * * *", "UTC", utc(2026, 1, 2, 3), utc(2026, 1, 2, 3)),  # at-or-before
        ("0 3 * * *", "UTC", utc(2026, 1, 2, 2, 59), utc(2026, 1, 1, 3)),
        # in the spring-forward gap's shifted instant: 02:30 -> 01:30 UTC
        ("30 2 * * *", BERLIN, utc(2026, 3, 29, 1, 20), utc(2026, 3, 28, 1, 30)),
        ("30 2 * * *", BERLIN, utc(2026, 3, 29, 1, 40), utc(2026, 3, 29, 1, 30)),
        # during the repeated hour of fall back, the latest is the first pass
        ("30 2 * * *", BERLIN, utc(2026, 10, 25, 1, 40), utc(2026, 10, 25, 0, 30)),
        # ... also while the repeated wall clock is still before the tick's time
        ("30 2 * * *", BERLIN, utc(2026, 10, 25, 1, 10), utc(2026, 10, 25, 0, 30)),
        ("10,50 2,3 * * *", BERLIN, utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 0, 50)),
        # wall-clock matches the forward sequence drops are not returned
        ("10,50 2,3 * * *", BERLIN, utc(2026, 3, 29, 1, 20), utc(2026, 3, 29, 1, 10)),
        ("10 3 * * *", BERLIN, utc(2026, 3, 29, 1, 20), utc(2026, 3, 29, 1, 10)),
    ],
)
def test_latest_at_or_before(cron: str, tz: str, now: datetime, expected: datetime) -> None:
    trigger = Trigger(cron=cron, timezone=tz)
    latest = trigger.latest_at_or_before(now)
    assert latest == expected
    assert trigger.next_after(latest - timedelta(hours=6)) <= latest  # a real tick


def test_latest_agrees_with_forward_sequence_across_dst() -> None:
    """Walk two DST days minute by minute: every latest tick is one the forward
    sequence produces, so a new leader never invents or double-fires a tick."""
    for cron in ("*/15 * * * *", "30 2 * * *", "0 * * * *", "10,50 2,3 * * *"):
        trigger = Trigger(cron=cron, timezone=BERLIN)
        for day in (utc(2026, 3, 28, 22), utc(2026, 10, 24, 22)):
            sequence, t = set(), day - timedelta(days=1)
            while t < day + timedelta(hours=9):
                t = trigger.next_after(t)
                sequence.add(t)
            for minute in range(0, 8 * 60, 7):
                now = day + timedelta(minutes=minute)
                assert trigger.latest_at_or_before(now) in sequence, (cron, now)


T0 = utc(2026, 1, 1, 12, 0, 0)
EVERY_MIN = Trigger(every=60.0)


@pytest.mark.parametrize(
    ("cursor", "now", "missed", "tick", "new_cursor", "skipped"),
    [
        # nothing due yet
        (T0, T0 + timedelta(seconds=59), "run_once", None, T0, False),
        # on time: fire it
        (
            T0,
            T0 + timedelta(seconds=60.3),
            "skip",
            T0 + timedelta(seconds=60),
            T0 + timedelta(seconds=60),
            False,
        ),
        (
            T0,
            T0 + timedelta(seconds=60.3),
            "run_once",
            T0 + timedelta(seconds=60),
            T0 + timedelta(seconds=60),
            False,
        ),
        # an hour without a scheduler: run_once fires one catch-up (the latest), never 60
        (
            T0,
            T0 + timedelta(minutes=60, seconds=30),
            "run_once",
            T0 + timedelta(minutes=60),
            T0 + timedelta(minutes=60),
            False,
        ),
        # ... skip drops it and waits for the next tick
        (
            T0,
            T0 + timedelta(minutes=60, seconds=30),
            "skip",
            None,
            T0 + timedelta(minutes=60),
            True,
        ),
        # already fired (cursor = the latest tick): nothing again
        (
            T0 + timedelta(minutes=1),
            T0 + timedelta(minutes=1, seconds=30),
            "run_once",
            None,
            T0 + timedelta(minutes=1),
            False,
        ),
    ],
)
def test_missed_tick_policy(cursor, now, missed, tick, new_cursor, skipped) -> None:
    d = decide(EVERY_MIN, cursor, now, missed)
    assert (d.tick, d.cursor, d.skipped) == (tick, new_cursor, skipped)


def test_tick_ids_are_stable_and_subject_safe() -> None:
    tick = utc(2026, 3, 29, 1, 30)
    assert tick_job_id("nightly", tick) == "cron.nightly.20260329T013000Z"
    assert manual_job_id("nightly", tick) == "cron.nightly.manual.20260329T013000Z"
    assert tick_stamp(tick + timedelta(milliseconds=500)) == "20260329T013000.500Z"
    assert parse_stamp(tick_stamp(tick)) == tick
    assert parse_stamp("20260329T013000.500Z") == tick + timedelta(milliseconds=500)


def test_jitter_is_deterministic_and_bounded() -> None:
    offsets = [jitter_offset("s", T0 + timedelta(minutes=i), 30.0) for i in range(50)]
    assert all(0 <= o < 30 for o in offsets)
    assert len(set(offsets)) > 40
    # Every host must compute the same offset: pinned values, not a call compared with
    # itself (which would pass for a per-process random or hash()-seeded offset too).
    assert jitter_offset("s", T0, 30.0) == pytest.approx(23.48745408154166)
    assert jitter_offset("t", T0, 30.0) == pytest.approx(26.701055959114623)
    assert jitter_offset("s", T0, 0.0) == 0.0
