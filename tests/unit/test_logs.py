"""Log line formatting: journald priority prefixes and flat JSON objects (pure)."""

from __future__ import annotations

import json
import os
import sys
from collections import namedtuple
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from naqd.logs import (
    add_job_context,
    end_log_job,
    journald_stream,
    json_line,
    log_job,
    priority,
    with_priority,
)

Exc = namedtuple("Exc", "type value traceback")


@pytest.mark.parametrize(
    ("name", "no", "prio"),
    [
        ("TRACE", 5, 7),
        ("DEBUG", 10, 7),
        ("INFO", 20, 6),
        ("SUCCESS", 25, 5),
        ("WARNING", 30, 4),
        ("ERROR", 40, 3),
        ("CRITICAL", 50, 2),
        ("CUSTOM", 45, 3),  # a custom level by its number
        ("NOISE", 1, 7),
    ],
)
def test_priorities(name: str, no: int, prio: int) -> None:
    assert priority(name, no) == prio


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ("one\n", "<4>one\n"),
        ("one", "<4>one\n"),
        ("boom\nTraceback:\n  line\n", "<4>boom\n<4>Traceback:\n<4>  line\n"),
    ],
)
def test_every_line_gets_the_prefix(text: str, out: str) -> None:
    assert with_priority(text, 4) == out


def record(**extra: object) -> dict:
    return {
        "time": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "level": SimpleNamespace(name="WARNING", no=30),
        "message": "job abc retrying",
        "extra": {"role": "worker", "queue": "default", "queue_tag": "[default]", **extra},
        "process": SimpleNamespace(id=42),
        "exception": None,
    }


def test_json_is_one_flat_object_with_the_context() -> None:
    line = json_line(record(job_id="abc", task="app:send"))
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2026-01-02T03:04:05.678+00:00",
        "level": "WARNING",
        "message": "job abc retrying",
        "role": "worker",
        "queue": "default",
        "pid": 42,
        "job_id": "abc",
        "task": "app:send",
    }


def test_json_leaves_out_context_that_does_not_apply_and_adds_a_traceback() -> None:
    rec = record()
    rec["extra"]["queue"] = ""
    try:
        raise ValueError("bad")
    except ValueError:
        rec["exception"] = Exc(*sys.exc_info())
    out = json.loads(json_line(rec))
    assert set(out) == {"time", "level", "message", "role", "pid", "exception"}
    assert "ValueError: bad" in out["exception"]
    assert len(json_line(record())) < 250  # was ~850 bytes of loguru's nested record


def test_journal_stream_must_name_this_stderr(tmp_path: Path) -> None:
    with (tmp_path / "a").open("w") as a, (tmp_path / "b").open("w") as b:
        st = os.fstat(a.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert journald_stream(env, a.fileno())
        assert not journald_stream(env, b.fileno())  # stderr redirected elsewhere
        assert not journald_stream({}, a.fileno())
        assert not journald_stream({"JOURNAL_STREAM": "garbage"}, a.fileno())


def test_the_running_job_is_added_to_a_line_only_while_it_runs() -> None:
    outside = {"extra": {"role": "worker"}}
    add_job_context(outside)
    assert outside["extra"] == {"role": "worker"}
    token = log_job("abc", "app:send")
    try:
        inside = {"extra": {"role": "worker"}}
        add_job_context(inside)
        assert inside["extra"] == {"role": "worker", "job_id": "abc", "task": "app:send"}
        bound = {"extra": {"job_id": "other"}}  # logger.bind(job_id=...) wins
        add_job_context(bound)
        assert bound["extra"] == {"job_id": "other", "task": "app:send"}
    finally:
        end_log_job(token)
    after = {"extra": {}}
    add_job_context(after)
    assert after["extra"] == {}
