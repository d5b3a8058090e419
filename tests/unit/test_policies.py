from __future__ import annotations

import pytest

from naqd.config import QueueConfig
from naqd.config.model import Config, SchedulerConfig
from naqd.supervisor.policy import Slot, after_exit, plan_slots, restart_delay
from naqd.worker.retry import retry_delay


@pytest.mark.parametrize(
    ("attempt", "delay"), [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0)]
)
def test_retry_delay_is_exponential_and_capped(attempt: int, delay: float) -> None:
    assert retry_delay(attempt) == delay


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
