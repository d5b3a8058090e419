"""How the supervisor judges a child from its shared health cell: pure rules."""

from __future__ import annotations

import multiprocessing

import pytest

from naqd.observe.health import (
    ChildLink,
    ChildView,
    all_healthy,
    all_ready,
    assess,
    watchdog_ok,
)

CTX = multiprocessing.get_context("spawn")
STALE = 3.0


def view(link: ChildLink | None, pid: int | None = 100, started: float = 0.0, **kw) -> ChildView:
    return ChildView("worker[default]#0", "worker", "default", 0, pid, started, link, **kw)


def link_with(beat: float, connected: bool, ready: bool) -> ChildLink:
    link = ChildLink.create(CTX)
    link.cell[:] = [beat, float(connected), float(ready)]
    return link


@pytest.mark.parametrize(
    ("beat", "connected", "ready", "now", "state"),
    [
        (100.0, True, True, 101.0, "healthy"),
        (100.0, True, True, 103.5, "stale"),  # loop blocked or process stopped
        (100.0, False, True, 101.0, "disconnected"),
        (100.0, False, False, 101.0, "starting"),  # beating, not yet serving
        (0.0, False, False, 5.0, "starting"),  # Python still booting
        (0.0, False, False, 60.0, "stale"),  # never beat at all
    ],
)
def test_states(beat: float, connected: bool, ready: bool, now: float, state: str) -> None:
    assert assess(view(link_with(beat, connected, ready)), now, STALE).state == state


def test_a_slot_without_a_process_is_down_and_a_role_that_does_not_beat_is_alive() -> None:
    assert assess(view(None, pid=None), 10.0, STALE).state == "down"
    assert assess(view(None, tracked=False), 10.0, STALE).state == "healthy"


def test_verdicts() -> None:
    healthy = assess(view(link_with(100, True, True)), 101, STALE)
    stale = assess(view(link_with(90, True, True)), 101, STALE)
    offline = assess(view(link_with(100, False, True)), 101, STALE)
    down = assess(view(None, pid=None), 101, STALE)
    assert all_healthy([healthy]) and not all_healthy([healthy, offline])
    assert not all_healthy([])
    assert all_ready([healthy, offline]) and not all_ready([healthy, down])
    # The watchdog starves only for a wedged loop, not for NATS or a restart backoff.
    assert watchdog_ok([healthy, offline, down])
    assert not watchdog_ok([healthy, stale])


def test_the_child_side_beat_is_what_the_supervisor_reads() -> None:
    link = ChildLink.create(CTX)
    link.beat(connected=True, ready=False)
    r = link.read()
    assert r.beat > 0 and r.connected and not r.ready


@pytest.mark.parametrize(
    ("pid", "link", "lost_at", "now", "healthy"),
    [
        (None, None, 100.0, 101.0, True),  # down, restarting within the grace
        (None, None, 100.0, 106.0, False),  # down past the grace
        (200, "booting", 100.0, 104.0, True),  # replacement still booting
        (200, "booting", 100.0, 105.5, False),
        (None, None, None, 101.0, False),  # never lost: down is down
        (200, "stale", 100.0, 101.0, False),  # a wedged loop gets no grace
    ],
)
def test_health_grace_covers_a_restart_only(
    pid: int | None, link: str | None, lost_at: float | None, now: float, healthy: bool
) -> None:
    cell = {
        None: None,
        "booting": link_with(0.0, False, False),
        "stale": link_with(90.0, True, True),
    }[link]
    h = assess(view(cell, pid=pid, started=100.0, lost_at=lost_at), now, STALE, grace=5.0)
    assert all_healthy([h]) is healthy
    assert (h.state == "healthy") is False  # naqd_child_healthy still tells the truth


def test_healthz_fails_while_the_embedded_server_is_down() -> None:
    from naqd.observe.http import SupervisorView

    kids = (view(None, tracked=False),)
    assert SupervisorView(children=kids).healthy(SupervisorView(children=kids).health())
    for state, ok in (("up", True), ("down", False)):
        v = SupervisorView(children=kids, nats_server=state)
        assert v.healthy(v.health()) is ok


def test_stale_and_recovered_children_are_logged_once() -> None:
    from naqd.observe.health import ChildHealth, stale_events

    def kid(state: str, pid: int = 7) -> ChildHealth:
        return ChildHealth("worker[q]#0", "worker", pid, state, 9.5 if state == "stale" else 0.1)

    seen, events = stale_events({}, [kid("healthy")], 3.0)
    assert events == []
    seen, events = stale_events(seen, [kid("stale")], 3.0)
    assert [lvl for lvl, _ in events] == ["WARNING"]
    assert "worker[q]#0 (pid 7) is stale: no beat for 9.5s (limit 3s)" in events[0][1]
    seen, events = stale_events(seen, [kid("stale")], 3.0)
    assert events == []  # still stale: said once
    seen, events = stale_events(seen, [kid("healthy")], 3.0)
    assert events == [("INFO", "worker[q]#0 (pid 7) beats again (healthy)")]
    # A restarted child (new pid) is judged afresh; a down slot says nothing here.
    seen, events = stale_events(seen, [kid("starting", pid=8), kid("down", pid=None)], 3.0)
    assert events == []


def test_repeated_connection_errors_are_throttled() -> None:
    from naqd.transport.throttle import ErrorThrottle

    now = [0.0]
    t = ErrorThrottle(every=30.0, clock=lambda: now[0])
    refused = "ConnectionRefusedError: [Errno 111] Connect call failed"
    assert t.note(refused) == 0  # the first is logged
    for i in range(59):  # twice a second for 30 s: left out
        now[0] = 0.5 * (i + 1)
        assert t.note(refused) is None
    assert t.note("TimeoutError: ") == 0  # a different error is logged at once
    now[0] = 30.0
    assert t.note(refused) == 59  # the next line says how many were left out
    now[0] = 30.5
    assert t.note(refused) is None
    assert t.reset() == 1
    assert t.note(refused) == 0  # after a reconnect the first error shows again
