"""Schedule math, pure: fire times of cron and interval schedules, the missed-tick policy,
and the job id of a tick. All instants are aware UTC datetimes.

Cron matches *wall-clock* times in the schedule's time zone (docs/scheduling.md):
- a local time that does not exist (spring forward) fires at the same offset after the
  jump (02:30 -> 03:30), once, unless that instant is a regular match anyway;
- a local time that happens twice (fall back) fires on its first pass only.
Intervals (`every`) are elapsed time: ticks are whole multiples of the interval since
the Unix epoch, so every host computes the same ticks and no time zone applies.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from croniter import croniter

from naqd.config.model import ScheduleConfig

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A tick fired within this long after its time is on time; later it counts as missed.
MISFIRE_GRACE = 2.0
_MAX_STEPS = 10_000  # croniter candidates examined per lookup (DST holes skip a few)

Missed = Literal["skip", "run_once"]


@dataclass(frozen=True)
class Trigger:
    """The timing part of a schedule: a cron expression or an interval in seconds."""

    cron: str | None = None
    every: float | None = None
    timezone: str = "UTC"

    @classmethod
    def of(cls, schedule: ScheduleConfig) -> Trigger:
        return cls(schedule.cron, schedule.every, schedule.timezone)

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after `after`."""
        if self.every is not None:
            n = _ticks_since_epoch(after, self.every) + 1
            return EPOCH + timedelta(seconds=n * self.every)
        assert self.cron is not None
        return _cron_next_after(self.cron, self.timezone, after)

    def latest_at_or_before(self, now: datetime, since: datetime | None = None) -> datetime:
        """The last fire time at or before `now` (what is due when a scheduler wakes).
        `since` (a tick known to be in the sequence) bounds the walk near DST changes."""
        if self.every is not None:
            return EPOCH + timedelta(seconds=_ticks_since_epoch(now, self.every) * self.every)
        assert self.cron is not None
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone).replace(tzinfo=None) + _EPSILON
        it = croniter(self.cron, local, second_at_beginning=_six(self.cron))
        candidate = _to_utc(it.get_prev(datetime), zone)
        while candidate > now:  # a gap time whose shifted instant is still ahead
            candidate = _to_utc(it.get_prev(datetime), zone)
        if not _near_transition(zone, candidate) and not _near_transition(zone, now):
            return candidate
        # Around a DST change a wall-clock match can map onto an instant the forward
        # sequence drops, and in a repeated hour the wall clock is back before a tick
        # that has passed: walk forward from a safe point so both directions agree.
        start = candidate - _DST_WINDOW
        if since is not None and since > start:
            start = since
        latest: datetime | None = None
        t = self.next_after(start - _EPSILON)
        while t <= now:
            latest, t = t, self.next_after(t)
        if latest is None:  # no tick in the window: the last one is before it
            return self.latest_at_or_before(start - _EPSILON)
        return latest


@functools.lru_cache(maxsize=4096)
def _cron_next_after(cron: str, timezone: str, after: datetime) -> datetime:
    """Cached: building a croniter costs ~0.1 ms, and schedules that share an
    expression (`0 * * * *`) share their ticks."""
    zone = ZoneInfo(timezone)
    local = after.astimezone(zone).replace(tzinfo=None)
    it = croniter(cron, local, second_at_beginning=_six(cron))
    for _ in range(_MAX_STEPS):
        candidate = _to_utc(it.get_next(datetime), zone)
        if candidate > after:
            return candidate
    raise ValueError(f"cron {cron!r} has no fire time after {after.isoformat()}")


_DST_WINDOW = timedelta(hours=3)


def _near_transition(zone: ZoneInfo, t: datetime) -> bool:
    before, after = (t - _DST_WINDOW).astimezone(zone), (t + _DST_WINDOW).astimezone(zone)
    return before.utcoffset() != after.utcoffset()


_EPSILON = timedelta(microseconds=1)


def _six(expr: str) -> bool:
    return len(expr.split()) == 6


def _ticks_since_epoch(t: datetime, every: float) -> int:
    # Whole microseconds avoid float drift for intervals like 1.5 s.
    micros = (t - EPOCH) // timedelta(microseconds=1)
    step = round(every * 1_000_000)
    return micros // step


def _to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    """Naive local wall time -> UTC. fold=0 picks the first pass of a repeated time and,
    for a time inside a spring-forward gap, the pre-jump offset (02:30 -> 03:30 local)."""
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


@dataclass(frozen=True)
class Decision:
    """What a scheduler does for one schedule now: fire `tick` (or not) and move the
    cursor (the last tick dealt with) to `cursor`."""

    tick: datetime | None
    cursor: datetime
    skipped: bool = False  # a due tick was dropped by `missed: skip`


def decide(
    trigger: Trigger,
    cursor: datetime,
    now: datetime,
    missed: Missed,
    grace: float = MISFIRE_GRACE,
) -> Decision:
    """The missed-tick policy. Only the latest due tick can fire: never a burst.

    - on time (fired within `grace` of its time): fire it;
    - late (no scheduler ran, or the leader changed): `run_once` fires it once as the
      catch-up, `skip` drops it and waits for the next one.
    Earlier due ticks between `cursor` and the latest are dropped either way.
    """
    latest = trigger.latest_at_or_before(now, since=cursor)
    if latest <= cursor:
        return Decision(None, cursor)
    late = (now - latest).total_seconds()
    if late <= grace or missed == "run_once":
        return Decision(latest, latest)
    return Decision(None, latest, skipped=True)


def jitter_offset(name: str, tick: datetime, jitter: float) -> float:
    """A delay in [0, jitter) that every host computes alike for the same tick."""
    if jitter <= 0:
        return 0.0
    digest = hashlib.sha256(f"{name}|{tick.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * jitter


@functools.lru_cache(maxsize=1024)
def tick_stamp(tick: datetime) -> str:
    """`20260329T013000Z`, with milliseconds only for sub-second ticks. Cached: the
    schedules due together share their tick."""
    tick = tick.astimezone(UTC)
    stamp = tick.strftime("%Y%m%dT%H%M%S")
    if tick.microsecond:
        stamp += f".{tick.microsecond // 1000:03d}"
    return stamp + "Z"


def tick_job_id(name: str, tick: datetime) -> str:
    """Job id and Nats-Msg-Id of a fire: the same for every scheduler that fires the tick,
    so two that both believe they lead still store one job."""
    return f"cron.{name}.{tick_stamp(tick)}"


def parse_stamp(stamp: str) -> datetime:
    """Inverse of tick_stamp (for the tick stored in KV)."""
    fmt = "%Y%m%dT%H%M%S.%fZ" if "." in stamp else "%Y%m%dT%H%M%SZ"
    return datetime.strptime(stamp, fmt).replace(tzinfo=UTC)
