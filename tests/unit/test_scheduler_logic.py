"""Pure scheduler logic: the lease state machine, the reload diff, dependency verdicts,
delayed-job helpers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from naqd.client.delayed import DelayedJob, ServerTooOld, require_schedules, rfc3339, utc_instant
from naqd.config import QueueConfig, ScheduleConfig
from naqd.models import Config, LeaderElectionConfig, SchedulerConfig
from naqd.protocol.envelope import ErrorInfo, ResultRecord
from naqd.scheduler.dependencies import judge, parse_parents, queue_of
from naqd.scheduler.lease import Lease
from naqd.supervisor.reload import plan_reload

# --- lease --------------------------------------------------------------------------


def test_new_leader_waits_one_renew_interval_before_firing() -> None:
    lease = Lease(lease=2.0, renew_every=0.5)
    assert not lease.held(0.0) and not lease.may_fire(0.0)
    lease.won(sent_at=10.0, revision=7)
    assert lease.held(10.1) and not lease.may_fire(10.4)
    assert lease.may_fire(10.5)


def test_leader_steps_down_on_its_own_clock_without_any_error() -> None:
    """A partition: renewals are sent but never confirmed, and no error arrives."""
    lease = Lease(lease=2.0, renew_every=0.5)
    lease.won(sent_at=0.0, revision=1)
    lease.renewed(sent_at=0.5, revision=2)
    # renewals sent at 1.0, 1.5, ... are never answered
    assert lease.held(1.99)
    assert not lease.held(2.0)  # 0.5 + 0.75 * 2.0: steps down
    assert not lease.may_fire(2.0)
    assert lease.expired(2.0) and lease.revision is None


def test_step_down_precedes_server_expiry() -> None:
    """The key expires `lease` after the server stored the renewal, which is after it
    was sent: the old leader has stopped by then."""
    lease = Lease(lease=15.0, renew_every=5.0)
    lease.won(sent_at=0.0, revision=1)
    lease.renewed(sent_at=5.0, revision=2)
    server_expiry = 5.0 + 15.0
    assert not lease.held(server_expiry - 0.01)
    assert lease.step_down_after < lease.lease


def test_renewals_keep_the_lease_and_late_confirmations_do_not_revive_it() -> None:
    lease = Lease(lease=2.0, renew_every=0.5)
    lease.won(0.0, 1)
    for i in range(1, 20):
        lease.renewed(sent_at=i * 0.5, revision=i + 1)
    assert lease.held(10.0) and lease.revision == 20
    assert lease.expired(20.0)
    lease.renewed(sent_at=9.9, revision=99)  # confirmation arriving after step-down
    assert lease.revision is None


def test_lost_lease_stops_firing_at_once() -> None:
    lease = Lease(lease=2.0, renew_every=0.5)
    lease.won(0.0, 1)
    lease.lost()
    assert not lease.held(0.6) and not lease.may_fire(0.6)


# --- reload diff --------------------------------------------------------------------

BASE = Config(
    path="naq.yaml",
    queues={"a": QueueConfig(name="a"), "b": QueueConfig(name="b", processes=2)},
    schedules={"s": ScheduleConfig(name="s", task="m:f", every=1.0, queue="a")},
)


def test_adding_a_schedule_restarts_only_the_scheduler() -> None:
    new = replace(
        BASE,
        schedules={**BASE.schedules, "t": ScheduleConfig(name="t", task="m:g", every=2.0)},
    )
    plan = plan_reload(BASE, new)
    assert plan.restart == {("scheduler", "", 0)} and not plan.stop and not plan.start


def test_changed_queue_restarts_only_its_workers() -> None:
    new = replace(
        BASE, queues={**BASE.queues, "b": QueueConfig(name="b", processes=2, concurrency=3)}
    )
    plan = plan_reload(BASE, new)
    assert plan.restart == {("worker", "b", 0), ("worker", "b", 1)}


def test_new_and_removed_queues_start_and_stop() -> None:
    new = replace(BASE, queues={"a": QueueConfig(name="a"), "c": QueueConfig(name="c")})
    plan = plan_reload(BASE, new)
    assert plan.stop == {("worker", "b", 0), ("worker", "b", 1)}
    assert [(s.role, s.queue, s.index) for s in plan.start] == [("worker", "c", 0)]
    assert ("scheduler", "", 0) in plan.restart  # queue names changed


def test_fewer_processes_stops_the_extra_slot_and_identical_config_does_nothing() -> None:
    new = replace(BASE, queues={**BASE.queues, "b": QueueConfig(name="b", processes=1)})
    plan = plan_reload(BASE, new)
    assert plan.stop == {("worker", "b", 1)}
    assert plan.restart == {("worker", "b", 0)}  # its queue settings changed
    assert plan_reload(BASE, replace(BASE)).empty


def test_lease_settings_restart_the_scheduler_and_disabling_stops_it() -> None:
    le = replace(BASE, scheduler=SchedulerConfig(True, LeaderElectionConfig(4.0, 1.0)))
    assert plan_reload(BASE, le).restart == {("scheduler", "", 0)}
    off = replace(BASE, scheduler=SchedulerConfig(enabled=False))
    assert plan_reload(BASE, off).stop == {("scheduler", "", 0)}


# --- dependencies -------------------------------------------------------------------


def rec(job_id: str, status: str, error: ErrorInfo | None = None) -> ResultRecord:
    return ResultRecord(id=job_id, status=status, error=error)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("records", "action", "reason"),
    [
        ({}, "wait", ""),
        ({"a": rec("a", "succeeded")}, "wait", ""),
        ({"a": rec("a", "succeeded"), "b": rec("b", "running")}, "wait", ""),
        ({"a": rec("a", "succeeded"), "b": rec("b", "succeeded")}, "release", ""),
        (
            {"a": rec("a", "running"), "b": rec("b", "failed", ErrorInfo("ValueError", "boom"))},
            "fail",
            "dependency b failed: ValueError: boom",
        ),
    ],
)
def test_dependency_verdicts(records, action, reason) -> None:
    verdict = judge(["a", "b"], records)
    assert (verdict.action, verdict.reason) == (action, reason)


def test_dependency_headers_and_subjects() -> None:
    assert parse_parents("a,b") == ["a", "b"] and parse_parents(None) == []
    assert queue_of("naqd.deps.emails.cron.x.20260101T000000Z") == "emails"


# --- delayed jobs -------------------------------------------------------------------


def test_naive_datetimes_are_refused_and_aware_ones_become_utc() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        utc_instant(datetime(2026, 1, 1, 12))
    plus2 = timezone(timedelta(hours=2))
    assert utc_instant(datetime(2026, 1, 1, 12, tzinfo=plus2)) == datetime(
        2026, 1, 1, 10, tzinfo=UTC
    )


def test_schedule_time_rounds_up_so_a_job_never_runs_early() -> None:
    assert rfc3339(datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)) == "2026-01-01T10:00:00Z"
    assert rfc3339(datetime(2026, 1, 1, 10, 0, 0, 1000, tzinfo=UTC)) == "2026-01-01T10:00:01Z"


def test_old_servers_get_a_clear_error() -> None:
    with pytest.raises(ServerTooOld, match=r"nats-server 2\.12 or newer .* level 1"):
        require_schedules(1)
    require_schedules(2)


def test_delayed_holder_reads_back() -> None:
    d = DelayedJob.from_holder(
        "naqd.sched.default.abc",
        {"Nats-Schedule": "@at 2026-01-01T10:00:01Z"},
        b'{"task": "m:f", "id": "abc"}',
    )
    assert d == DelayedJob("abc", "default", datetime(2026, 1, 1, 10, 0, 1, tzinfo=UTC), "m:f")


def test_one_summary_line_per_wave() -> None:
    from datetime import UTC, datetime

    from naqd.config import ScheduleConfig
    from naqd.scheduler.waves import Fire, wave_summary

    t0 = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
    t1 = datetime(2026, 1, 1, 3, 1, tzinfo=UTC)

    def fire(name: str, tick: datetime) -> Fire:
        s = ScheduleConfig(name=name, task="m:f", every=60.0)
        return Fire(s, tick, t0, 1, False)

    one = wave_summary([fire("nightly", t0)], 1, 0)
    assert one == "fired 1 of 1 due tick(s) of nightly (2026-01-01T03:00:00+00:00)"
    many = [fire(f"s{i}", t0) for i in range(5)] + [fire("s0", t1)]
    line = wave_summary(many, 3, 2)
    assert line == (
        "fired 3 of 6 due tick(s) of s0, s1, s2 and 2 more "
        "(2026-01-01T03:00:00+00:00 .. 2026-01-01T03:01:00+00:00); 2 paused; 1 being retried"
    )
