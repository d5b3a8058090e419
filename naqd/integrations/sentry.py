"""Sentry, as a middleware (docs/extending.md#sentry): a job's exception with its context,
and cron monitor check-ins for scheduled jobs. Needs `sentry-sdk` (the `sentry` extra);
the application (or the daemon, naqd/integrations/daemon.py) calls `sentry_sdk.init`.

- Errors: by default only a dead-lettered job is reported (retries are expected to fail
  now and then); `report="every_failure"` reports each failed attempt. The event has tags
  `naqd.task`, `naqd.queue`, `naqd.job_id`, `naqd.attempt`, `naqd.reason`, a `naqd job`
  context (those plus the worker), and a fingerprint per task and exception type.
- Cron monitors: the elected scheduler checks in `in_progress` when it stores a fired job
  (monitor slug = the schedule's name, its cron or interval upserted as the monitor's
  schedule); the worker that finishes the job checks in `ok` or `error` under the same
  check-in id (derived from the job id, so no state travels). A tick the scheduler skips
  as missed (`missed: skip`) is reported as a warning event for the monitor, and Sentry,
  which knows the schedule, marks the check-in that never came as missed itself.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any, Literal

import sentry_sdk
from sentry_sdk.crons import capture_checkin

from naqd.middleware import JobInfo, Middleware
from naqd.protocol.ticks import parse_fired_job_id

__all__ = ["Sentry", "check_in_id", "monitor_config", "monitor_slug"]

Report = Literal["dead_letter", "every_failure"]
_NAMESPACE = uuid.UUID("7f1f6f1e-6b2a-4c53-9f6e-6e6171640001")  # naqd's, for check-in ids


def check_in_id(job_id: str) -> str:
    """The check-in id of a fired job: the scheduler and the worker both derive it."""
    return uuid.uuid5(_NAMESPACE, job_id).hex


def monitor_slug(schedule_name: str) -> str:
    """Sentry's slugs are lower case letters, digits, `-` and `_` (50 at most)."""
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in schedule_name.lower())
    return slug[:50] or "naqd"


def monitor_config(schedule: Any) -> dict[str, Any] | None:
    """The monitor's schedule, upserted with each in-progress check-in: a crontab as is,
    an interval in whole minutes (Sentry has no seconds); None when it cannot be said."""
    cron = getattr(schedule, "cron", None)
    tz = getattr(schedule, "timezone", "UTC") or "UTC"
    if cron:
        return {"schedule": {"type": "crontab", "value": cron}, "timezone": tz}
    every = getattr(schedule, "every", None)
    if every and every >= 60 and every % 60 == 0:
        return {"schedule": {"type": "interval", "value": int(every // 60), "unit": "minute"}}
    return None


class Sentry(Middleware):
    """`report`: "dead_letter" (default) or "every_failure"; `monitors`: cron check-ins."""

    def __init__(self, report: Report = "dead_letter", monitors: bool = True) -> None:
        if report not in ("dead_letter", "every_failure"):
            raise ValueError(f"report: expected dead_letter or every_failure, got {report!r}")
        self.report = report
        self.monitors = monitors

    # -- errors -------------------------------------------------------------------------

    def on_retry(self, job: JobInfo, exc: BaseException | None, delay: float) -> None:
        if self.report == "every_failure" and exc is not None:
            self._capture(job, exc, "retry")

    def on_dead_letter(self, job: JobInfo, exc: BaseException | None, reason: str) -> None:
        self._capture(job, exc, reason)
        self._check_in_done(job, "error")

    def on_success(self, job: JobInfo, result: Any) -> None:
        self._check_in_done(job, "ok")

    def _capture(self, job: JobInfo, exc: BaseException | None, reason: str) -> None:
        context = {
            "task": job.task,
            "queue": job.queue,
            "job_id": job.id,
            "attempt": job.attempt,
            "worker": str(job.worker),
            "reason": reason,
        }
        with sentry_sdk.new_scope() as scope:
            for key in ("task", "queue", "job_id", "attempt", "reason"):
                scope.set_tag(f"naqd.{key}", str(context[key]))
            scope.set_context("naqd job", context)
            kind = type(exc).__qualname__ if exc is not None else reason
            scope.fingerprint = ["naqd", job.task, kind]
            if exc is not None:
                sentry_sdk.capture_exception(exc)
            else:  # nothing raised: refused unread, or its workers kept dying
                sentry_sdk.capture_message(
                    f"naqd job {job.id} ({job.task}) dead-lettered: {reason}", level="error"
                )

    # -- cron monitors ------------------------------------------------------------------

    def on_schedule_fire(self, schedule: Any, tick: datetime, job_id: str) -> None:
        if not self.monitors:
            return
        capture_checkin(
            monitor_slug=monitor_slug(schedule.name),
            check_in_id=check_in_id(job_id),
            status="in_progress",
            monitor_config=monitor_config(schedule),  # type: ignore[arg-type]
        )

    def on_missed_tick(self, schedule: Any, tick: datetime) -> None:
        if not self.monitors:
            return
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("monitor.slug", monitor_slug(schedule.name))
            scope.set_context("naqd schedule", {"name": schedule.name, "tick": tick.isoformat()})
            sentry_sdk.capture_message(
                f"naqd schedule {schedule.name}: tick {tick.isoformat()} missed and skipped",
                level="warning",
            )

    def _check_in_done(self, job: JobInfo, status: str) -> None:
        if not self.monitors:
            return
        fired = parse_fired_job_id(job.id)
        if fired is None:
            return
        name, tick, manual = fired
        if manual:  # `naqd schedules trigger`: no check-in was opened for it
            return
        capture_checkin(
            monitor_slug=monitor_slug(name),
            check_in_id=check_in_id(job.id),
            status=status,
            duration=max(0.0, time.time() - (job.enqueued_at or tick.timestamp())),
        )
