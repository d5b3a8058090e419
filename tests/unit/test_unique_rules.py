"""The pure rules of unique jobs (naqd/client/unique_rules.py): modes, lock lifetimes, and
what a second enqueue does to a waiting debounced job."""

from __future__ import annotations

import pytest

from naqd.client.unique_rules import REPLACE_GUARD, lock_ttl, next_start, unique_mode


@pytest.mark.parametrize(
    ("mode", "window", "delay", "ttl"),
    [
        ("until_done", 60, 0, 60),
        ("until_done", 0.2, 0, 1),  # whole seconds, at least one
        ("throttle", 60, 0, 60),
        ("throttle", 60, 30.5, 91),  # a delayed job: its delay plus the window
        ("until_done", 10, -3, 10),  # a time already past adds nothing
        ("debounce", 10, 0, 15),  # until the job starts, plus a margin
        ("latest", 10, 0, 15),
    ],
)
def test_lock_ttl(mode, window, delay, ttl) -> None:
    assert lock_ttl(mode, window, delay) == ttl


@pytest.mark.parametrize(
    ("mode", "now", "run_at", "start"),
    [
        ("debounce", 100, 110, 130),  # restarts the wait (window 30)
        ("latest", 100, 110, 110),  # keeps the start
        ("debounce", 100, 100 + REPLACE_GUARD, None),  # about to fire: a new job
        ("latest", 100, 99, None),  # fired already
    ],
)
def test_next_start(mode, now, run_at, start) -> None:
    assert next_start(mode, now, run_at, 30) == start


def test_unique_mode() -> None:
    assert unique_mode(None) == "until_done"
    for mode in ("until_done", "throttle", "debounce", "latest"):
        assert unique_mode(mode) == mode
    with pytest.raises(ValueError, match="throttle"):
        unique_mode("throttled")
