"""Child liveness, shared with the supervisor through three doubles of shared memory.

A child's event loop writes [beat, connected, ready] (beat = CLOCK_MONOTONIC seconds,
system-wide on Linux); the supervisor reads them for /healthz, READY=1 and WATCHDOG=1
without any NATS connection of its own. A thread could keep beating while the loop is
stuck, so the beat comes from a loop task
(docs/jetstream.md#liveness-beats-come-from-the-event-loop).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from naqd.proctitle import set_title

BEAT, CONNECTED, READY = 0, 1, 2


@dataclass
class ChildLink:
    """What the supervisor hands each child besides its config: the shared health cell and,
    for the one reporting child per host, where to write the status snapshot."""

    cell: Any  # multiprocessing RawArray('d', 3)
    status_path: str | None = None
    label: str = ""  # worker[default]#0: the process title
    recycles: int = 0  # how often this child's slot was recycled before (its heartbeat says)

    @classmethod
    def create(
        cls, ctx: Any, status_path: str | None = None, label: str = "", recycles: int = 0
    ) -> ChildLink:
        return cls(ctx.RawArray("d", 3), status_path, label, recycles)

    def beat(self, connected: bool, ready: bool) -> None:
        self.cell[CONNECTED] = 1.0 if connected else 0.0
        self.cell[READY] = 1.0 if ready else 0.0
        self.cell[BEAT] = time.monotonic()

    def read(self) -> Reading:
        return Reading(self.cell[BEAT], self.cell[CONNECTED] > 0, self.cell[READY] > 0)


@dataclass(frozen=True)
class Reading:
    beat: float  # monotonic; 0 = never beaten
    connected: bool
    ready: bool


_LINK: ChildLink | None = None


def current_link() -> ChildLink | None:
    """This child's link, or None when it runs outside the supervisor (tests, embedding)."""
    return _LINK


def child_main(entry: Callable[..., None], link: ChildLink, *args: Any) -> None:
    """The spawn target of every child: remember the link, then run the role's entry."""
    global _LINK
    _LINK = link
    set_title(link.label)
    entry(*args)


# -- judging health: pure ---------------------------------------------------------------


@dataclass(frozen=True)
class ChildView:
    """A child slot as the supervisor sees it at one moment."""

    label: str
    role: str
    queue: str
    index: int
    pid: int | None
    started_at: float  # monotonic
    link: ChildLink | None
    tracked: bool = True  # its role beats (a role that does not is judged by being alive)
    lost_at: float | None = None  # monotonic: when its last process exited (or was replaced)
    pool: str = ""  # a pooled worker: the pool's name (`queue` then lists its queues)


@dataclass(frozen=True)
class ChildHealth:
    label: str
    role: str
    pid: int | None
    state: str  # healthy | starting | stale | disconnected | down
    age: float | None  # seconds since the last beat
    connected: bool = False  # as the child last reported
    in_grace: bool = False  # not healthy, but restarting for less than the health grace

    @property
    def alive(self) -> bool:
        """The loop runs (fresh beat or still booting): what the systemd watchdog wants."""
        return self.state in ("healthy", "starting", "disconnected")


def assess(view: ChildView, now: float, stale_after: float, grace: float = 0.0) -> ChildHealth:
    """A child's state; `grace` seconds after its process was lost (a crash, a recycle, a
    reload) a child that is down or still starting is `in_grace`, not yet unhealthy."""
    h = _assess(view, now, stale_after)
    if h.state in ("down", "starting") and view.lost_at is not None and now - view.lost_at <= grace:
        return replace(h, in_grace=True)
    return h


def _assess(view: ChildView, now: float, stale_after: float) -> ChildHealth:
    if view.pid is None:
        return ChildHealth(view.label, view.role, None, "down", None)
    if not view.tracked or view.link is None:
        return ChildHealth(view.label, view.role, view.pid, "healthy", None, True)
    r = view.link.read()
    if r.beat <= 0:
        # Python's start-up and the task imports come before the loop's first beat.
        state = "starting" if now - view.started_at <= max(stale_after, 10.0) else "stale"
        return ChildHealth(view.label, view.role, view.pid, state, None)
    age = max(0.0, now - r.beat)
    if age > stale_after:
        state = "stale"
    elif not r.ready:
        state = "starting"
    elif not r.connected:
        state = "disconnected"
    else:
        state = "healthy"
    return ChildHealth(view.label, view.role, view.pid, state, round(age, 3), r.connected)


def all_healthy(children: list[ChildHealth]) -> bool:
    """/healthz: every child beats, is ready and has NATS (or is being restarted and
    still within the health grace)."""
    return bool(children) and all(c.state == "healthy" or c.in_grace for c in children)


def all_ready(children: list[ChildHealth]) -> bool:
    """READY=1: every child has booted once (connected, resources ensured, pulling)."""
    return bool(children) and all(c.state in ("healthy", "disconnected") for c in children)


def watchdog_ok(children: list[ChildHealth]) -> bool:
    """WATCHDOG=1: every running child's loop is alive. A NATS outage or a child waiting
    out its restart backoff does not starve the watchdog: restarting naqd fixes neither."""
    return all(c.alive for c in children if c.pid is not None)


def stale_events(
    before: dict[tuple[str, int], str], children: list[ChildHealth], stale_after: float
) -> tuple[dict[tuple[str, int], str], list[tuple[str, str]]]:
    """Log lines (level, message) for children that went stale or beat again since the
    last look, and the states to compare with next time (keyed by label and pid, so a
    restarted child starts afresh)."""
    now: dict[tuple[str, int], str] = {}
    events: list[tuple[str, str]] = []
    for c in children:
        if c.pid is None:
            continue
        key = (c.label, c.pid)
        now[key] = c.state
        was = before.get(key)
        if c.state == "stale" and was != "stale":
            beat = f"no beat for {c.age:.1f}s" if c.age is not None else "never beat"
            events.append(
                (
                    "WARNING",
                    f"{c.label} (pid {c.pid}) is stale: {beat} (limit {stale_after:g}s); "
                    "its event loop is blocked or the process hangs",
                )
            )
        elif was == "stale" and c.state != "stale":
            events.append(("INFO", f"{c.label} (pid {c.pid}) beats again ({c.state})"))
    return now, events
