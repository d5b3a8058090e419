"""Deadlines: per-job timeouts on one loop timer, each due after its own delay."""

from __future__ import annotations

import asyncio

from naqd.worker.deadlines import Deadlines


async def _until(pred, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.002)


async def test_entries_fire_when_due_and_removed_ones_never() -> None:
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    deadlines = Deadlines()
    deadlines.add(loop, "a", 0.01, fired.append, "a")
    deadlines.add(loop, "gone", 0.01, fired.append, "gone")
    deadlines.add(loop, "b", 0.02, fired.append, "b")
    deadlines.remove("gone", 0.01)
    await _until(lambda: len(fired) == 2)
    assert fired == ["a", "b"]
    assert not deadlines._by_delay and deadlines._timer is None  # nothing left armed


async def test_a_shorter_delay_added_later_fires_first() -> None:
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    deadlines = Deadlines()
    deadlines.add(loop, "long", 30, fired.append, "long")
    deadlines.add(loop, "short", 0.01, fired.append, "short")
    await _until(lambda: fired == ["short"])
    deadlines.remove("long", 30)
    assert deadlines._timer is not None  # still armed for "long", which is gone: harmless


async def test_a_failing_callback_does_not_stop_the_others() -> None:
    loop = asyncio.get_running_loop()
    errors: list[object] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx["exception"]))
    fired: list[str] = []

    def boom() -> None:
        raise RuntimeError("boom")

    deadlines = Deadlines()
    deadlines.add(loop, 1, 0.0, boom)
    deadlines.add(loop, 2, 0.0, fired.append, "after")
    await _until(lambda: fired == ["after"])
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    loop.set_exception_handler(None)
