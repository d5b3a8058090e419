"""Code schedule definitions: validation with the YAML rules, modify, encode/decode."""

from __future__ import annotations

from datetime import timedelta

import pytest

from naqd.protocol.schedules import (
    ScheduleError,
    build_schedule,
    decode,
    encode,
    modified,
)


def test_build_accepts_durations_and_normalises_cron() -> None:
    s = build_schedule("t1", "m:f", (1,), {"a": 2}, every="1m30s", jitter=timedelta(seconds=3))
    assert (s.every, s.jitter, s.cron, s.timezone) == (90.0, 3.0, None, "UTC")
    c = build_schedule("t2", "m:f", cron="  */5  * * * * ", timezone="Europe/Berlin")
    assert (c.cron, c.timezone, c.every) == ("*/5 * * * *", "Europe/Berlin", None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"cron": "0 * * * *", "every": 60}, "exactly one"),
        ({"every": 0.5}, "at least 1s"),
        ({"cron": "61 * * * *"}, "invalid cron"),
        ({"cron": "0 3 * * *", "timezone": "Europe/Berln"}, "did you mean"),
        ({"every": 5, "missed": "later"}, "run_once or skip"),
        ({"every": 5, "retries": -1}, "retries"),
        ({"every": 5, "queue": "a b"}, "queue"),
    ],
)
def test_build_refuses_bad_definitions(kwargs: dict, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        build_schedule("t", "m:f", **kwargs)


def test_bad_name_task_and_arguments() -> None:
    with pytest.raises(ScheduleError, match="name"):
        build_schedule("a.b", "m:f", every=5)
    with pytest.raises(ScheduleError, match="task"):
        build_schedule("a", "not-a-task", every=5)
    with pytest.raises(ScheduleError, match="JSON"):
        build_schedule("a", "m:f", (object(),), every=5)


def test_modify_switches_trigger_and_keeps_the_rest() -> None:
    s = build_schedule("t", "m:f", (1,), every=5, queue="q", retries=2)
    m = modified(s, {"cron": "0 3 * * *", "timezone": "Asia/Tokyo"})
    assert (m.cron, m.every, m.timezone, m.args, m.queue, m.retries) == (
        "0 3 * * *", None, "Asia/Tokyo", (1,), "q", 2,
    )  # fmt: skip
    assert modified(m, {"every": 10}).cron is None
    with pytest.raises(ScheduleError, match="cannot modify"):
        modified(s, {"name": "other"})


def test_encode_decode_round_trip() -> None:
    s = build_schedule("t", "m:f", (1, "x"), {"k": [1]}, cron="0 3 * * *", timeout=30)
    code = decode(encode(s, updated_at=123.5), revision=7)
    assert code.schedule == s and code.updated_at == 123.5 and code.revision == 7
    with pytest.raises(ScheduleError):
        decode(b'{"name": "t"}')
    with pytest.raises(ScheduleError):
        decode(b"not json")
