"""Pure parts of observability: schedule preview, key names, tables, the metrics dir."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from naqd.cli.ops import _ago, table
from naqd.config import parse_config
from naqd.observe.metrics import ENV_DIR, UNKNOWN_TASK, JobObserver, MultiprocDir
from naqd.observe.queuegauges import pause_change
from naqd.observe.status import hosts, leader, schedules
from naqd.protocol.names import dlq_queue, heartbeat_key


def config(yaml: str):
    return parse_config(yaml, "naq.yaml")


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def test_next_fire_of_cron_schedules_in_their_time_zone() -> None:
    cfg = config(
        """
schedules:
  berlin: {cron: "0 3 * * *", timezone: Europe/Berlin, task: "m:f"}
  seconds: {cron: "30 * * * * *", task: "m:f"}
  interval: {every: 30s, task: "m:f"}
  off: {cron: "0 1 * * *", task: "m:f", enabled: false}
"""
    )
    now = ts("2026-07-01T12:00:10+00:00")
    rows = {r["schedule"]: r for r in schedules(cfg, now)}
    assert rows["berlin"]["next"] == ts("2026-07-02T01:00:00+00:00")  # 03:00 CEST
    assert rows["seconds"]["next"] == ts("2026-07-01T12:00:30+00:00")  # seconds first
    assert rows["interval"]["next"] is None and rows["interval"]["trigger"] == "every 30s"
    assert rows["off"]["next"] is None and rows["off"]["enabled"] is False
    # Soonest first, schedules without a known next fire last.
    assert [r["schedule"] for r in schedules(cfg, now)][:2] == ["seconds", "berlin"]
    assert schedules(None) == []


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("web-1", "web-1.worker.42"),
        ("web-1.example.com", "web-1_example_com.worker.42"),
        ("", "unknown.worker.42"),
        ("häst*>", "häst__.worker.42"),
    ],
)
def test_heartbeat_keys_are_single_safe_tokens_per_part(host: str, key: str) -> None:
    assert heartbeat_key(host, "worker", 42) == key


def test_leader_and_hosts_from_heartbeat_records() -> None:
    records = [
        {"host": "a", "role": "worker", "running": ["x", "y"]},
        {"host": "a", "role": "scheduler", "pid": 7, "extra": {"leader": False}},
        {"host": "b", "role": "scheduler", "pid": 9, "extra": {"leader": True, "leader_since": 5}},
        {"host": "b", "role": "worker", "running": []},
    ]
    assert leader(records) == {"host": "b", "pid": 9, "since": 5}
    assert leader(records[:2]) is None
    assert hosts(records) == [
        {"host": "a", "workers": 1, "schedulers": 1, "running": 2},
        {"host": "b", "workers": 1, "schedulers": 1, "running": 0},
    ]


def test_table_and_relative_times() -> None:
    out = table([["default", 3, None], ["emails", 12345, 1]], ["QUEUE", "PENDING", "DEAD"])
    assert out.splitlines() == [
        "QUEUE    PENDING  DEAD",
        "default  3        -",
        "emails   12345    1",
    ]
    assert _ago(-5) == "5s ago" and _ago(600) == "in 10m" and _ago(-7200) == "2.0h ago"


def test_multiproc_dir_is_wiped_and_exported(tmp_path: Path, monkeypatch) -> None:
    # prepare() exports the directory: make monkeypatch restore the variable afterwards.
    monkeypatch.setenv(ENV_DIR, "")
    given = tmp_path / "metrics"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"old run")
    (given / "keep.txt").write_text("not ours")
    d = MultiprocDir({ENV_DIR: str(given)})
    assert d.prepare() == given
    assert not (given / "counter_123.db").exists() and (given / "keep.txt").exists()
    assert os.environ[ENV_DIR] == str(given)
    d.cleanup()
    assert given.exists()  # the operator's directory is not ours to remove

    private = MultiprocDir({})
    path = private.prepare()
    assert path.is_dir()
    private.cleanup()
    assert not path.exists()


def test_job_observer_tracks_running_ids_and_outcomes() -> None:
    obs = JobObserver("unit-queue")
    obs.started("a", "m:f", enqueued_at=0)
    obs.started("b", "m:f", enqueued_at=1.0)
    assert set(obs.running) == {"a", "b"}
    obs.ended("a", "m:f", "succeeded")
    obs.ended("b", "m:f", "retried")
    obs.started("b", "m:f", enqueued_at=1.0)
    obs.ended("b", "m:f", "failed")
    assert obs.running == {} and (obs.done, obs.failed) == (1, 1)


def test_batched_observations_equal_one_by_one_observations() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from naqd.observe.metrics import DURATION_BUCKETS, add_observations

    values = [0.0, 0.004, 0.005, 0.0051, 0.3, 2.5, 7.0, 3600.0, 99999.0]
    reg = CollectorRegistry()
    one = Histogram("one", "", buckets=DURATION_BUCKETS, registry=reg)
    many = Histogram("many", "", buckets=DURATION_BUCKETS, registry=reg)
    for v in values:
        one.observe(v)
    add_observations(many, values)

    def samples(name: str) -> list[tuple[str, dict[str, str], float]]:
        fam = next(m for m in reg.collect() if m.name == name)
        return [
            (s.name.removeprefix(name), s.labels, s.value)
            for s in fam.samples
            if not s.name.endswith("_created")
        ]

    assert samples("one") == samples("many")


async def test_job_observer_writes_counts_at_most_a_flush_late() -> None:
    from naqd.observe.metrics import metrics

    obs = JobObserver("flush-queue")
    counter = metrics().started.labels("flush-queue", "m:g")
    before = counter._value.get()
    obs.started("a", "m:g", enqueued_at=0)
    obs.ended("a", "m:g", "succeeded")
    assert counter._value.get() == before  # batched, not written per job
    obs.flush()
    assert counter._value.get() == before + 1
    assert metrics().succeeded.labels("flush-queue", "m:g")._value.get() >= 1


@pytest.mark.parametrize(
    ("before", "paused", "log"),
    [
        (None, False, None),  # first reading, serving: nothing to say
        (None, True, "paused"),  # first reading, paused: say why nothing runs
        (False, True, "paused"),
        (True, False, "resumed"),
        (True, True, None),
        (False, False, None),
    ],
)
def test_pause_changes_logged(before: bool | None, paused: bool, log: str | None) -> None:
    assert pause_change(before, paused) == log


@pytest.mark.parametrize(
    ("subject", "queue"),
    [
        ("naqd.dlq.default.abc", "default"),
        ("naqd.dlq.emails.cron.nightly.20260101T030000", "emails"),
        ("naqd.dlq", ""),
    ],
)
def test_dead_letter_subject_names_its_queue(subject: str, queue: str) -> None:
    assert dlq_queue(subject) == queue


def test_unknown_task_names_share_one_label() -> None:
    obs = JobObserver("q", known=lambda name: name == "m:real")
    assert [obs.label(n) for n in ("m:real", "m:typo1", "m:typo2")] == [
        "m:real",
        UNKNOWN_TASK,
        UNKNOWN_TASK,
    ]
    assert JobObserver("q").label("m:anything") == "m:anything"


@pytest.mark.parametrize("name", ["", "has space", ":", "tests.tasks:", "tests.tasks:no_such"])
def test_names_that_do_not_resolve_are_unknown_without_raising(name: str) -> None:
    from naqd.worker.tasks import task_known

    assert task_known(name) is False
    assert JobObserver("q", task_known).label(name) == UNKNOWN_TASK
