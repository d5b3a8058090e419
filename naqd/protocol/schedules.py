"""Schedules created from code (`client.schedule(...)`): stored as JSON under
`code.<name>` in the schedule state bucket and fired by the elected scheduler next to
the YAML ones, with the same cron math, cursors and job ids (docs/job-control.md).

Pure: validation and encoding, shared by the client (which writes definitions) and the
scheduler (which reads them; its KV watch is naqd/scheduler/code_source.py). The cron
and time zone checks are here too, for naq.yaml's schedules (naqd/config/schema.py).
croniter is imported only when a cron expression is checked."""

from __future__ import annotations

import difflib
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from naqd.models import ScheduleConfig
from naqd.protocol.envelope import validate_option, validate_queue, validate_task
from naqd.protocol.ticks import croniter_class
from naqd.values import describe, parse_duration

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
MIN_EVERY = 1.0


class ScheduleError(ValueError):
    """A code schedule that cannot be stored: bad definition, or a YAML name."""


@dataclass(frozen=True)
class CodeSchedule:
    schedule: ScheduleConfig
    updated_at: float  # wall-clock; ticks before it never fire (no catch-up for them)
    revision: int = 0  # KV revision, for compare-and-set updates

    @property
    def name(self) -> str:
        return self.schedule.name

    @property
    def since(self) -> datetime:
        return datetime.fromtimestamp(self.updated_at, UTC)


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ScheduleError(f"invalid schedule name {name!r}: use 1-128 of A-Z a-z 0-9 _ -")
    return name


def check_cron(value: Any) -> str:
    """A cron expression of 5 fields, or 6 with seconds first, normalised."""
    if not isinstance(value, str):
        raise ValueError(f'expected a cron expression like "0 3 * * *", got {describe(value)}')
    fields = value.split()
    if not (len(fields) == 1 and value.strip().startswith("@")) and len(fields) not in (5, 6):
        raise ValueError(f"expected a cron expression with 5 or 6 fields, got {describe(value)}")
    # Six fields put seconds first, as Quartz, Spring and nats-server do.
    if not croniter_class().is_valid(value, second_at_beginning=len(fields) == 6):
        raise ValueError(f"invalid cron expression {describe(value)}")
    return " ".join(fields)


def check_timezone(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a timezone name like Europe/Berlin, got {describe(value)}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        close = difflib.get_close_matches(value, sorted(available_timezones()), n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        raise ValueError(f"unknown timezone {describe(value)}{hint}") from None
    return value


def _seconds(name: str, value: float | timedelta | str | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ScheduleError(f"{name}: {exc}") from None


def build_schedule(
    name: str,
    task: str,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    cron: str | None = None,
    every: float | timedelta | str | None = None,
    timezone: str = "UTC",
    queue: str = "default",
    missed: str = "run_once",
    jitter: float | timedelta | str | None = None,
    retries: int | None = None,
    timeout: float | timedelta | str | None = None,
) -> ScheduleConfig:
    """Validate a definition with the same rules as a YAML schedule."""
    validate_name(name)
    try:
        validate_task(task)
        validate_queue(queue)
        if (cron is None) == (every is None):
            raise ValueError("set exactly one of cron= and every=")
        if cron is not None:
            cron = check_cron(cron)
            timezone = check_timezone(timezone)
        every_s = _seconds("every", every)
        if every_s is not None and every_s < MIN_EVERY:
            raise ValueError(f"every must be at least {MIN_EVERY:g}s, got {every_s:g}s")
        if missed not in ("run_once", "skip"):
            raise ValueError(f"missed must be run_once or skip, got {missed!r}")
        if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int)):
            raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
        validate_option("retries", retries)
        timeout_s = validate_option("timeout", _seconds("timeout", timeout))
        jitter_s = _seconds("jitter", jitter) or 0.0
        json.dumps([list(args), kwargs or {}], allow_nan=False)
    except ScheduleError:
        raise
    except (ValueError, TypeError) as exc:
        raise ScheduleError(f"schedule {name!r}: {exc}") from None
    return ScheduleConfig(
        name=name,
        task=task,
        cron=cron,
        every=every_s,
        timezone=timezone if cron is not None else "UTC",
        args=tuple(args),
        kwargs=dict(kwargs or {}),
        queue=queue,
        missed=missed,  # type: ignore[arg-type]
        jitter=jitter_s,
        retries=retries,
        timeout=timeout_s,
    )


def modified(schedule: ScheduleConfig, changes: dict[str, Any]) -> ScheduleConfig:
    """`schedule` with `changes` applied, validated again as a whole. Setting `cron`
    clears `every` and the other way round."""
    fields: dict[str, Any] = {
        "task": schedule.task,
        "args": schedule.args,
        "kwargs": schedule.kwargs,
        "cron": schedule.cron,
        "every": schedule.every,
        "timezone": schedule.timezone,
        "queue": schedule.queue,
        "missed": schedule.missed,
        "jitter": schedule.jitter,
        "retries": schedule.retries,
        "timeout": schedule.timeout,
    }
    unknown = set(changes) - set(fields)
    if unknown:
        raise ScheduleError(f"cannot modify {', '.join(sorted(unknown))} of a schedule")
    if changes.get("cron") is not None:
        fields["every"] = None
    if changes.get("every") is not None:
        fields["cron"] = None
    fields.update(changes)
    args, kwargs, task = fields.pop("args"), fields.pop("kwargs"), fields.pop("task")
    return build_schedule(schedule.name, task, tuple(args), kwargs, **fields)


def encode(schedule: ScheduleConfig, updated_at: float | None = None) -> bytes:
    d = {
        "name": schedule.name,
        "task": schedule.task,
        "cron": schedule.cron,
        "every": schedule.every,
        "timezone": schedule.timezone,
        "args": list(schedule.args),
        "kwargs": schedule.kwargs,
        "queue": schedule.queue,
        "missed": schedule.missed,
        "jitter": schedule.jitter,
        "retries": schedule.retries,
        "timeout": schedule.timeout,
        "updated_at": time.time() if updated_at is None else updated_at,
    }
    return json.dumps(d, separators=(",", ":")).encode()


def decode(data: bytes, revision: int = 0) -> CodeSchedule:
    """Raises ScheduleError for a value that is not a valid definition."""
    try:
        d = json.loads(data)
        schedule = build_schedule(
            d["name"],
            d["task"],
            tuple(d.get("args", ())),
            d.get("kwargs") or {},
            cron=d.get("cron"),
            every=d.get("every"),
            timezone=d.get("timezone", "UTC"),
            queue=d.get("queue", "default"),
            missed=d.get("missed", "run_once"),
            jitter=d.get("jitter"),
            retries=d.get("retries"),
            timeout=d.get("timeout"),
        )
        return CodeSchedule(schedule, float(d.get("updated_at", 0.0)), revision)
    except ScheduleError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise ScheduleError(f"unreadable code schedule: {exc}") from None
