"""Priorities with the worker in-process: high jobs enqueued behind a long backlog of low ones
start next; the plain queue subject is the default level; unknown levels are refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from naqd import SyncClient
from tests.natsserver import wait_until

BODY = """
tasks: {imports: [tests.tasks]}
queues: {default: {concurrency: 2, ack_wait: 5s, priorities: [high, default, low]}}
scheduler: {enabled: false}
shutdown: {grace_period: 5s}
"""


def starts(directory: Path) -> list[tuple[str, float]]:
    path = directory / "order"
    if not path.exists():
        return []
    return [(a, float(b)) for a, b in (line.split() for line in path.read_text().splitlines())]


def test_high_jobs_start_before_the_remaining_low_ones(
    worker_factory, nats_server, tmp_path: Path
) -> None:
    worker_factory(BODY)
    with SyncClient(nats_server.url) as client:
        low = client.enqueue_many(
            "tests.tasks:order_run", [(str(tmp_path), "low", 0.005)] * 1000, priority="low"
        )
        wait_until(lambda: len(starts(tmp_path)) >= 20, 20, what="low jobs to run")
        enqueued_high = time.time()
        high = [
            client.enqueue("tests.tasks:order_run", str(tmp_path), "high", priority="high")
            for _ in range(10)
        ]
        for job in high:
            job.result(timeout=30)
        order = starts(tmp_path)
        last_high = max(t for label, t in order if label == "high")
        low_between = [t for label, t in order if label == "low" and enqueued_high < t < last_high]
        low_before = [t for label, t in order if label == "low" and t <= last_high]
        # A handful of lows may start meanwhile (jobs already pulled, the fairness round).
        assert len(low_between) <= 20, f"{len(low_between)} low jobs started first"
        assert len(low_before) < 500, "the high jobs waited for the low backlog"
        low[-1].result(timeout=60)
    assert len([1 for label, _ in starts(tmp_path) if label == "low"]) == 1000


def test_plain_subject_is_the_default_level_and_unknown_levels_are_refused(
    worker_factory, nats_server
) -> None:
    worker_factory(BODY)
    with SyncClient(nats_server.url) as client:
        assert client.enqueue("tests.tasks:add", 1, 2).result(timeout=20) == 3
        assert client.enqueue("tests.tasks:add", 2, 2, priority="default").result(timeout=20) == 4
        assert client.enqueue("tests.tasks:add", 3, 2, priority="low").result(timeout=20) == 5
        with pytest.raises(ValueError, match="no priority level 'urgent'"):
            client.enqueue("tests.tasks:add", 1, 2, priority="urgent")
        with pytest.raises(ValueError, match="invalid priority"):
            client.enqueue("tests.tasks:add", 1, 2, priority="a.b")


def test_pausing_a_queue_pauses_every_level(worker_factory, nats_server, tmp_path) -> None:
    worker_factory(BODY)
    with SyncClient(nats_server.url) as client:
        client.pause_queue("default")
        jobs = [
            client.enqueue("tests.tasks:order_run", str(tmp_path), level, priority=level)
            for level in ("high", "default", "low")
        ]
        time.sleep(1.0)  # the behaviour under test: no level delivers while paused
        assert starts(tmp_path) == []
        client.resume_queue("default")
        for job in jobs:
            job.result(timeout=30)
        assert sorted(label for label, _ in starts(tmp_path)) == ["default", "high", "low"]


def test_status_and_purge_count_every_level_of_a_queue(worker_factory, nats_server) -> None:
    """`naqd queues` shows one row per queue (its levels summed); purge empties them all."""
    import json
    import subprocess

    from tests.conftest import naqd_executable

    def naqd(*args: str) -> str:
        out = subprocess.run(
            [naqd_executable(), *args, "--servers", nats_server.url, "--json"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout

    worker = worker_factory(BODY)
    with SyncClient(nats_server.url) as client:
        client.pause_queue("default")
        for level in ("high", None, "low"):
            client.enqueue_many("tests.tasks:add", [(1, 1)] * 3, priority=level)
    rows = json.loads(naqd("queues"))
    assert [(r["queue"], r["pending"], r["paused"]) for r in rows] == [("default", 9, True)]
    assert json.loads(naqd("purge", "default", "--yes")) == {"queue": "default", "purged": 9}
    worker.stop()
