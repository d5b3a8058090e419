"""Delayed jobs, the pure part: instants, holder headers, the server version check, and
reading a pending holder back (docs/jetstream.md#delayed-jobs-as-server-schedules, ADR-51)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from naqd.client.errors import NaqdError
from naqd.protocol.names import (
    DELAYED_SUBJECT_PREFIX,
    HDR_ENCODING,
    HDR_SCHEDULE,
    HDR_SCHEDULE_TARGET,
    SCHEDULES_API_LEVEL,
)


class ServerTooOld(NaqdError):
    """The NATS server cannot hold delayed jobs."""


def require_schedules(api_level: int) -> None:
    if api_level < SCHEDULES_API_LEVEL:
        raise ServerTooOld(
            "delayed jobs need nats-server 2.12 or newer (JetStream API level "
            f"{SCHEDULES_API_LEVEL}); this server reports API level {api_level}"
        )


def utc_instant(when: datetime) -> datetime:
    if not isinstance(when, datetime):
        raise TypeError(f"expected a datetime, got {type(when).__name__}")
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(
            f"naive datetime {when.isoformat()} is ambiguous: pass a timezone-aware one, "
            "e.g. datetime.now(UTC) + timedelta(minutes=5)"
        )
    return when.astimezone(UTC)


def rfc3339(at: datetime) -> str:
    """Whole seconds, rounded up, so a job never runs before its time."""
    ts = at.timestamp()
    whole = int(ts) + (1 if ts % 1 else 0)
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule_headers(at: datetime, target: str) -> dict[str, str]:
    """What makes a message a holder the server fires into `target` at `at`. The server
    copies the holder's other headers verbatim onto the fired job (a signed job stays
    signed), but not its Nats-Msg-Id."""
    return {HDR_SCHEDULE: f"@at {rfc3339(at)}", HDR_SCHEDULE_TARGET: target}


@dataclass(frozen=True)
class DelayedJob:
    id: str
    queue: str
    run_at: datetime
    task: str

    @classmethod
    def from_holder(cls, subject: str, headers: dict[str, str], data: bytes) -> DelayedJob:
        _queue_and_id = subject[len(DELAYED_SUBJECT_PREFIX) + 1 :]
        queue, _, job_id = _queue_and_id.partition(".")
        at_text = headers.get(HDR_SCHEDULE, "").removeprefix("@at ").strip()
        try:
            run_at = datetime.fromisoformat(at_text.replace("Z", "+00:00"))
        except ValueError:
            run_at = datetime.fromtimestamp(0, UTC)
        task = ""
        if headers.get(HDR_ENCODING, "json") == "json":
            with contextlib.suppress(ValueError, AttributeError):
                task = str(json.loads(data).get("task", ""))
        return cls(job_id, queue, run_at, task)
