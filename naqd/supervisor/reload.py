"""What a SIGHUP reload changes, as a pure diff of two configs over the child slots.

- a worker restarts (gracefully) only when its queue's settings changed, or settings
  every worker uses (nats, tasks, results, logging, shutdown, middleware, tracing,
  sentry); a pool's workers restart when the pool's settings (but `processes`) or any of
  its queues' settings changed (every process of the pool serves every one of its queues);
- the scheduler restarts when anything it uses changed (schedules, scheduler, ...),
  never because of a queue change alone;
- the web console restarts when its section, or what it shows or connects with, changed;
- slots of removed queues (or processes beyond a lowered count) drain and stop;
- slots of new queues (or a raised count) start.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from naqd.config import Config
from naqd.supervisor.policy import Slot, plan_slots

SlotKey = tuple[str, str, int]

_WORKER_GLOBALS = (
    "nats",
    "tasks",
    "results",
    "logging",
    "shutdown",
    "middleware",
    "tracing",
    "sentry",
)
_SCHEDULER_SETTINGS = (
    "nats",
    "tasks",
    "results",
    "logging",
    "schedules",
    "scheduler",
    "queues",
    "middleware",
    "tracing",
    "sentry",
)
_DASHBOARD_SETTINGS = ("nats", "tasks", "logging", "dashboard")


def slot_key(slot: Slot) -> SlotKey:
    return (slot.role, slot.queue, slot.index)


@dataclass
class ReloadPlan:
    restart: set[SlotKey] = field(default_factory=set)
    stop: set[SlotKey] = field(default_factory=set)
    start: list[Slot] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.restart or self.stop or self.start)


def _changed(old: Config, new: Config, names: tuple[str, ...]) -> bool:
    return any(getattr(old, n) != getattr(new, n) for n in names)


def _needs_restart(key: SlotKey, old: Config, new: Config) -> bool:
    role, name, _ = key
    if role == "dashboard":
        # What it shows comes from NATS; its config names only the queues to list.
        return set(old.queues) != set(new.queues) or _changed(old, new, _DASHBOARD_SETTINGS)
    if role == "scheduler":
        # The scheduler reads queue names only to validate schedules: restart it when
        # queues come or go, not when a queue's concurrency changes.
        if set(old.queues) != set(new.queues):
            return True
        names = tuple(n for n in _SCHEDULER_SETTINGS if n != "queues")
        return _changed(old, new, names)
    return _changed(old, new, _WORKER_GLOBALS) or _serves(old, name) != _serves(new, name)


def _serves(config: Config, name: str) -> object:
    """What a worker slot's process is made of: its pool's settings and its queues', or
    its one queue's."""
    pool = config.pools.get(name)
    if pool is not None:
        # How many processes a pool has is not what each of them is made of.
        return (replace(pool, processes=0), tuple(config.queues.get(q) for q in pool.queues))
    return config.queues.get(name)


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    old_pooled = {slot_key(s): s.pool for s in plan_slots(old)}
    new_slots = plan_slots(new)
    # A name that was a queue and now is a pool (or back) is another kind of child.
    new_keys = {slot_key(s) for s in new_slots if old_pooled.get(slot_key(s), s.pool) == s.pool}
    old_keys = set(old_pooled)
    plan = ReloadPlan()
    plan.stop = old_keys - new_keys
    plan.start = [
        s for s in new_slots if slot_key(s) not in old_keys or slot_key(s) not in new_keys
    ]
    plan.restart = {k for k in old_keys & new_keys if _needs_restart(k, old, new)}
    return plan
