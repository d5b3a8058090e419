"""Enqueue options as one value, and the one place a message is shaped (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from naqd.client import Client
from naqd.client.options import Options, split_kwargs
from naqd.protocol.names import (
    HDR_DEPENDS_ON,
    HDR_MSG_ID,
    HDR_SCHEDULE,
    HDR_SCHEDULE_TARGET,
    HDR_SIGNATURE,
    HDR_UNIQUE,
)

AT = datetime(2030, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)


def test_over_takes_only_what_is_not_set_here() -> None:
    task = Options(queue="emails", retries=5, timeout=30)
    call = Options(retries=0, job_id="j1")
    merged = call.over(task)
    assert (merged.queue, merged.retries, merged.timeout, merged.job_id) == (
        "emails",
        0,  # 0 is set: a per-enqueue 0 beats the task's 5
        30,
        "j1",
    )
    assert Options().over(Options()) == Options()
    assert Options(depends_on=("a",)).over(Options(depends_on=("b",))).depends_on == ("a",)


def test_split_kwargs_options_and_task_kwargs() -> None:
    opts, kwargs = split_kwargs({"queue": "q", "x": 1, "task_kwargs": {"queue": "smtp"}})
    assert opts.queue == "q"
    assert kwargs == {"x": 1, "queue": "smtp"}


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (Options(run_at=AT, depends_on=("a",)), "depends_on cannot be combined"),
        (Options(run_at=AT, unique_key="k", unique_mode="debounce"), "waits unique_for itself"),
        (Options(unique_mode="latest", depends_on=("a",)), "cannot have depends_on"),
        (Options(unique_key="k", unique_mode="debounce"), "needs unique_for"),
        (Options(priority="high", depends_on=("a",)), "priority cannot be combined"),
    ],
)
def test_impossible_combinations(options: Options, error: str) -> None:
    with pytest.raises(TypeError, match=error):
        Client("nats://x").shape("m:f", (), {}, options)


def test_depends_on_takes_handles_and_ids() -> None:
    class Handle:
        id = "parent-1"

    assert Options.of({"depends_on": [Handle(), "p2"]}).depends_on == ("parent-1", "p2")
    with pytest.raises(ValueError):
        Options.of({"depends_on": ["bad id!"]})


def test_routes() -> None:
    c = Client("nats://x", signing_key="k" * 32)
    now = c.shape("m:f", (1,), {}, Options(queue="q", job_id="j1"))
    assert now.subject == "naqd.jobs.q" and now.headers[HDR_MSG_ID] == "j1"
    assert json.loads(now.payload)["id"] == "j1" and now.unique is None

    later = c.shape("m:f", (1,), {}, Options(queue="q", job_id="j2", run_at=AT))
    assert later.subject == "naqd.sched.q.j2"
    assert later.headers[HDR_MSG_ID] == "hold.j2"
    assert later.headers[HDR_SCHEDULE] == "@at 2030-01-02T03:04:06Z"  # rounded up
    assert later.headers[HDR_SCHEDULE_TARGET] == "naqd.jobs.q"
    assert HDR_SIGNATURE in later.headers  # copied onto the fired job by the server

    after = c.shape("m:f", (1,), {}, Options(queue="q", job_id="j3", depends_on=("a", "b")))
    assert after.subject == "naqd.deps.q.j3" and after.headers[HDR_MSG_ID] == "hold.j3"
    assert after.headers[HDR_DEPENDS_ON] == "a,b"

    unique = c.shape("m:f", (1,), {}, Options(queue="q", job_id="j4", unique_for=1.5))
    assert unique.unique is not None
    key, window, mode = unique.unique.key, unique.unique.window, unique.unique.mode
    assert window == 2.0 and key.startswith("q:m:f:") and mode == "until_done"
    assert len(unique.headers[HDR_UNIQUE]) == 64
    # Only an until_done job's worker frees its lock: a throttle's window runs out.
    throttled = Options(queue="q", unique_for=1.5, unique_mode="throttle")
    assert HDR_UNIQUE not in c.shape("m:f", (1,), {}, throttled).headers
    # A delayed unique job's holder carries the lock to the job the server fires.
    held = c.shape("m:f", (1,), {}, Options(queue="q", unique_key="k", run_at=AT))
    assert held.subject.startswith("naqd.sched.q.") and HDR_UNIQUE in held.headers


def test_each_message_has_its_own_headers() -> None:
    c = Client("nats://x")
    a = c.shape("m:f", (), {}, Options())
    b = c.shape("m:f", (), {}, Options())
    a.headers["X-Trace"] = "1"
    assert "X-Trace" not in b.headers and a.job_id != b.job_id
