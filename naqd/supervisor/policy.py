"""Restart policy for children: pure functions of a slot's history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from naqd.config import Config
from naqd.exitcodes import EXIT_CONFIG, EXIT_OK, EXIT_RECYCLED

BACKOFF_BASE = 0.5
BACKOFF_MAX = 30.0
HEALTHY_UPTIME = 60.0


@dataclass
class Slot:
    """One configured child: worker number `index` of a queue, or of a pool (`pool`
    true: `queue` is then the pool's name, and the process serves the pool's queues)."""

    role: str
    queue: str
    index: int
    pool: bool = False
    pid: int | None = None
    started_at: float = 0.0
    failures: int = 0  # consecutive quick deaths
    next_start_at: float = 0.0
    lost_at: float | None = None  # monotonic: its process exited; None once healthy again
    recycles: int = 0  # replaced after max_jobs / max_memory (the console shows it)

    @property
    def label(self) -> str:
        if not self.queue:
            return self.role
        if self.pool:
            return f"pool[{self.queue}]#{self.index}"
        return f"{self.role}[{self.queue}]#{self.index}"


def restart_delay(failures: int) -> float:
    """0.5 s, 1 s, 2 s ... after consecutive crashes, capped at 30 s."""
    if failures <= 0:
        return 0.0
    return min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (failures - 1))


Outcome = Literal["recycled", "fatal", "crashed", "finished"]


def classify_exit(code: int | None, burst: bool = False) -> Outcome:
    """What a child's exit means: 0 is a planned recycle (respawn now, not a crash), 78 a
    config problem (stop the daemon: a respawn storm would fix nothing), else a crash.
    In burst mode, 0 means the worker found every queue idle (its slot is finished) and
    EXIT_RECYCLED is its recycle."""
    if burst:
        if code == EXIT_OK:
            return "finished"
        if code == EXIT_RECYCLED:
            return "recycled"
    if code == EXIT_OK:
        return "recycled"
    if code == EXIT_CONFIG:
        return "fatal"
    return "crashed"


def after_recycle(slot: Slot, now: float) -> float:
    """A recycle does not count as a crash: start the replacement at once."""
    slot.recycles += 1
    slot.pid = None
    slot.lost_at = now
    slot.next_start_at = now
    return now


def after_exit(slot: Slot, now: float) -> float:
    """Record a death; returns when the slot may start again. A child that ran for a
    healthy while resets its crash count (a crash once a day is not a crash loop)."""
    if now - slot.started_at >= HEALTHY_UPTIME:
        slot.failures = 0
    slot.failures += 1
    slot.pid = None
    slot.lost_at = now
    slot.next_start_at = now + restart_delay(slot.failures)
    return slot.next_start_at


def plan_slots(config: Config, burst: bool = False) -> list[Slot]:
    """The children this host runs: `processes` workers per pool, then per queue that
    is in no pool, and one scheduler (none in burst mode: a burst runs what is queued,
    it fires no schedules)."""
    slots = [
        Slot(role="worker", queue=p.name, index=i, pool=True)
        for p in config.pools.values()
        for i in range(p.processes)
    ]
    slots += [
        Slot(role="worker", queue=q.name, index=i)
        for q in config.queues.values()
        if config.pool_of(q.name) is None
        for i in range(q.processes)
    ]
    if config.scheduler.enabled and not burst:
        slots.append(Slot(role="scheduler", queue="", index=0))
    return slots
