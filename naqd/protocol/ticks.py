"""When a schedule fires, and the names of its ticks, pure; shared by the client (a code
schedule's next run) and the scheduler. All instants are aware UTC datetimes.

Cron matches *wall-clock* times in the schedule's time zone (docs/scheduling.md):
- a local time that does not exist (spring forward) fires at the same offset after the
  jump (02:30 -> 03:30), once, unless that instant is a regular match anyway;
- a local time that happens twice (fall back) fires on its first pass only.
Intervals (`every`) are elapsed time: ticks are whole multiples of the interval since
the Unix epoch, so every host computes the same ticks and no time zone applies.

croniter is imported on first use, so a client that never touches cron schedules does
not need it (it comes with the `cron` and `daemon` extras).
"""

from __future__ import annotations

import functools
import importlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from naqd.models import ScheduleConfig

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_STEPS = 10_000  # croniter candidates examined per lookup (DST holes skip a few)


def croniter_class() -> Any:
    """croniter's class, imported on first use; a clear error names the extra to install."""
    try:
        return importlib.import_module("croniter").croniter
    except ImportError:
        raise ModuleNotFoundError(
            "cron schedules need croniter: pip install 'naqd[cron]' "
            "(the daemon extra, 'naqd[daemon]', includes it)",
            name="croniter",
        ) from None


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
        it = croniter_class()(self.cron, local, second_at_beginning=_six(self.cron))
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
    it = croniter_class()(cron, local, second_at_beginning=_six(cron))
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


def manual_job_id(name: str, at: datetime) -> str:
    """Job id of `naqd schedules trigger`: apart from every tick's, so it never dedupes
    against (or blocks) the scheduled fire of the same instant."""
    return f"cron.{name}.manual.{tick_stamp(at)}"


_FIRED = re.compile(r"cron\.(?P<name>.+?)(?P<manual>\.manual)?\.(?P<stamp>\d{8}T\d{6}(\.\d{3})?Z)")


def parse_fired_job_id(job_id: str) -> tuple[str, datetime, bool] | None:
    """(schedule name, tick, manual) of a job id made by tick_job_id or manual_job_id;
    None for any other id. Integrations use it to tie a job to its schedule."""
    m = _FIRED.fullmatch(job_id)
    if m is None:
        return None
    return m["name"], parse_stamp(m["stamp"]), m["manual"] is not None


def parse_stamp(stamp: str) -> datetime:
    """Inverse of tick_stamp (for the tick stored in KV)."""
    fmt = "%Y%m%dT%H%M%S.%fZ" if "." in stamp else "%Y%m%dT%H%M%SZ"
    return datetime.strptime(stamp, fmt).replace(tzinfo=UTC)
