"""Sentry (naqd/integrations/sentry.py) in the in-process worker, against a real
nats-server, with sentry-sdk's own transport interface recording envelopes (no network):
a dead-lettered job's exception with its context, by default not on retries; cron
check-ins from a fire to the worker's ok or error under one check-in id."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from naqd import Client, JobFailed
from naqd.integrations.sentry import Sentry, check_in_id
from naqd.models import ScheduleConfig
from naqd.protocol.ticks import tick_job_id
from naqd.testing import Worker
from tests.natsserver import NatsServer

QUEUES = {"default": {"concurrency": 2, "retries": 1, "backoff": [0.05]}}


class Recording(Transport):
    """sentry-sdk's Transport, keeping each envelope's items instead of sending them."""

    items: list[tuple[str, dict[str, Any]]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            payload = item.payload.json
            if payload is not None:
                Recording.items.append((item.type or "", payload))


@pytest.fixture
def sentry() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    Recording.items = []
    # No default integrations: they would patch threading, subprocess and logging for
    # the rest of this test process.
    sentry_sdk.init(
        dsn="https://key@sentry.invalid/1", transport=Recording, default_integrations=False
    )
    yield Recording.items
    sentry_sdk.flush()
    sentry_sdk.init(default_integrations=False)  # no DSN: later tests send nothing


def _events(items: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [p for kind, p in items if kind == "event"]


def _check_ins(items: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [p for kind, p in items if kind == "check_in"]


@pytest.mark.parametrize("report", ["dead_letter", "every_failure"])
async def test_a_dead_lettered_job_is_reported_with_its_context(
    nats_server: NatsServer, sentry, tmp_path: Path, report: str
) -> None:
    url = nats_server.url
    async with (
        Worker(url, tasks=["tests.tasks"], queues=QUEUES, middleware=[Sentry(report=report)]),
        Client(url) as client,
    ):
        ok = await client.enqueue("tests.tasks:add", 1, 2)
        failing = await client.enqueue("tests.tasks:always_fail", str(tmp_path))
        assert await ok.result(timeout=10) == 3
        with pytest.raises(JobFailed):
            await failing.result(timeout=10)
    sentry_sdk.flush()
    events = _events(sentry)
    # Two attempts: the first retried, the second dead-lettered.
    assert len(events) == (1 if report == "dead_letter" else 2)
    last = events[-1]
    (exc,) = last["exception"]["values"]
    assert exc["type"] == "RuntimeError"
    assert last["tags"]["naqd.task"] == "tests.tasks:always_fail"
    assert last["tags"]["naqd.queue"] == "default"
    assert last["tags"]["naqd.job_id"] == failing.id
    assert last["tags"]["naqd.attempt"] == "2"
    assert last["tags"]["naqd.reason"] == "failed"
    context = last["contexts"]["naqd job"]
    assert context["job_id"] == failing.id and context["attempt"] == 2
    assert context["worker"].count(":") == 1  # host:pid
    if report == "every_failure":
        assert events[0]["tags"]["naqd.reason"] == "retry"
        assert events[0]["tags"]["naqd.attempt"] == "1"


async def test_cron_check_ins_from_fire_to_outcome(nats_server: NatsServer, sentry) -> None:
    """The scheduler's on_schedule_fire opens the check-in; the worker that runs the
    fired job closes it, `ok` or `error`, under the same id. A missed tick is a warning."""
    mw = Sentry()
    tick = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    good = ScheduleConfig("nightly", "tests.tasks:add", cron="30 1 * * *")
    bad = ScheduleConfig("hourly-report", "tests.tasks:fail", every=3600.0)
    url = nats_server.url
    async with (
        Worker(url, tasks=["tests.tasks"], queues=QUEUES, middleware=[mw]),
        Client(url) as client,
    ):
        jobs = []
        for schedule, args in ((good, (1, 2)), (bad, ("x",))):
            job_id = tick_job_id(schedule.name, tick)
            mw.on_schedule_fire(schedule, tick, job_id)  # as the scheduler's waves do
            jobs.append(await client.enqueue(schedule.task, *args, job_id=job_id, retries=0))
        assert await jobs[0].result(timeout=10) == 3
        with pytest.raises(JobFailed):
            await jobs[1].result(timeout=10)
    mw.on_missed_tick(good, tick)
    sentry_sdk.flush()
    by_id: dict[str, list[dict[str, Any]]] = {}
    for check in _check_ins(sentry):
        by_id.setdefault(check["check_in_id"], []).append(check)
    nightly = by_id[check_in_id(jobs[0].id)]
    assert [c["status"] for c in nightly] == ["in_progress", "ok"]
    assert {c["monitor_slug"] for c in nightly} == {"nightly"}
    assert nightly[0]["monitor_config"]["schedule"] == {"type": "crontab", "value": "30 1 * * *"}
    report = by_id[check_in_id(jobs[1].id)]
    assert [c["status"] for c in report] == ["in_progress", "error"]
    assert report[0]["monitor_config"]["schedule"] == {
        "type": "interval",
        "value": 60,
        "unit": "minute",
    }
    assert "duration" in report[1]
    events = _events(sentry)
    (missed,) = [e for e in events if e.get("level") == "warning"]
    assert "tick 2026-03-29T01:30:00+00:00 missed" in missed["message"]
    assert missed["tags"]["monitor.slug"] == "nightly"
    (failed,) = [e for e in events if e.get("level") == "error"]  # the fired job's own error
    assert failed["tags"]["naqd.job_id"] == jobs[1].id
