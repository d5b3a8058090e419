from __future__ import annotations

import pytest

from naqd.config import QueueConfig
from naqd.models import Config, SchedulerConfig
from naqd.supervisor.policy import (
    Slot,
    after_exit,
    after_recycle,
    classify_exit,
    plan_slots,
    restart_delay,
)


@pytest.mark.parametrize(
    ("failures", "delay"), [(0, 0.0), (1, 0.5), (2, 1.0), (4, 4.0), (20, 30.0)]
)
def test_restart_delay(failures: int, delay: float) -> None:
    assert restart_delay(failures) == delay


def test_quick_deaths_back_off_and_healthy_uptime_resets() -> None:
    slot = Slot(role="worker", queue="q", index=0, pid=1, started_at=100.0)
    assert after_exit(slot, 101.0) == 101.5
    slot.started_at = 102.0
    assert after_exit(slot, 103.0) == 104.0
    assert slot.failures == 2 and slot.pid is None
    slot.started_at = 200.0
    assert after_exit(slot, 300.0) == 300.5  # ran 100 s: counts as a first failure again


def test_plan_slots_one_per_process() -> None:
    config = Config(
        queues={
            "a": QueueConfig(name="a", processes=2),
            "b": QueueConfig(name="b", processes=1),
        }
    )
    assert [(s.role, s.queue, s.index) for s in plan_slots(config)] == [
        ("worker", "a", 0),
        ("worker", "a", 1),
        ("worker", "b", 0),
        ("scheduler", "", 0),  # one per host while scheduler.enabled (the default)
    ]


def test_plan_slots_without_scheduler() -> None:
    config = Config(scheduler=SchedulerConfig(enabled=False))
    assert [s.role for s in plan_slots(config)] == ["worker"]


def test_plan_slots_in_burst_mode_has_no_scheduler() -> None:
    assert [s.role for s in plan_slots(Config(), burst=True)] == ["worker"]


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(0, "recycled"), (78, "fatal"), (1, "crashed"), (3, "crashed"), (-9, "crashed"),
     (None, "crashed"), (75, "crashed")],
)  # fmt: skip
def test_classify_exit(code: int | None, outcome: str) -> None:
    assert classify_exit(code) == outcome


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(0, "finished"), (75, "recycled"), (78, "fatal"), (1, "crashed"), (-9, "crashed")],
)
def test_classify_exit_in_burst_mode(code: int, outcome: str) -> None:
    """A burst worker's 0 means 'every queue is idle'; its recycle has a code of its own."""
    assert classify_exit(code, burst=True) == outcome


def test_recycle_restarts_at_once_and_keeps_the_crash_count() -> None:
    slot = Slot(role="worker", queue="q", index=0, pid=1, started_at=100.0, failures=2)
    assert after_recycle(slot, 101.0) == 101.0
    assert slot.pid is None and slot.failures == 2


def test_a_dashboard_section_adds_the_console_child_and_reloads_restart_it() -> None:
    from dataclasses import replace

    from naqd.models import DashboardConfig
    from naqd.supervisor.reload import plan_reload

    config = Config(dashboard=DashboardConfig())
    assert [s.role for s in plan_slots(config)] == ["worker", "scheduler", "dashboard"]
    assert [s.role for s in plan_slots(config, burst=True)] == ["worker"]
    off = Config(dashboard=DashboardConfig(enabled=False))
    assert [s.role for s in plan_slots(off)] == ["worker", "scheduler"]
    console = ("dashboard", "", 0)
    moved = replace(config, dashboard=DashboardConfig(listen="127.0.0.1:9999"))
    assert plan_reload(config, moved).restart == {console}
    busier = replace(config, queues={"default": QueueConfig(name="default", concurrency=99)})
    assert console not in plan_reload(config, busier).restart  # the same queues to show
    added = plan_reload(Config(), config)
    assert [s.role for s in added.start] == ["dashboard"]
    assert plan_reload(config, Config()).stop == {console}
