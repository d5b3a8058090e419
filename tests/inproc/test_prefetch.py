"""Prefetch (docs/configuration.md, "prefetch"): a worker holds jobs beyond its slots,
and each rule that keeps that safe. Held jobs keep their ack deadline alive; a stopping
worker hands them back at once; a paused queue hands them back at once and takes
nothing more. (max_in_flight and rate with prefetch: tests/process/test_limits.py; a
SIGKILLed worker with a full backlog: tests/faults/test_worker_faults.py; priorities
refuse prefetch: tests/unit/test_pools.py.)"""

from __future__ import annotations

import time
from pathlib import Path

from naqd import SyncClient
from tests.natsserver import wait_until

BODY = """
tasks: {{imports: [tests.tasks]}}
queues: {{default: {{concurrency: 1, prefetch: {prefetch}, ack_wait: {ack_wait}}}}}
shutdown: {{grace_period: 1s}}
"""


def held(worker) -> int:
    return len(worker.worker.cores["default"].runner.backlog)


def count(directory: Path) -> int:
    path = directory / "runs"
    return len(path.read_text().split()) if path.exists() else 0


def test_held_jobs_keep_their_ack_deadline_alive(worker_factory, nats_server, tmp_path) -> None:
    worker = worker_factory(BODY.format(prefetch=3, ack_wait="1s"))
    with SyncClient(nats_server.url) as client:
        jobs = [client.enqueue("tests.tasks:record", str(tmp_path), n, 0.6) for n in range(4)]
        wait_until(lambda: held(worker) == 3, 20, what="three jobs held beyond the one slot")
        # The last one waits ~1.8 s for the slot, past its 1 s ack_wait: only the
        # keep-alive of held jobs stops the server from delivering it again.
        assert [job.result(timeout=30) for job in jobs] == [0, 1, 2, 3]
        assert {client.record(job.id).attempts for job in jobs} == {1}
    runs = "".join(p.read_text() for p in tmp_path.glob("runs-*")).split()
    assert sorted(runs) == ["0", "1", "2", "3"]  # each ran once


def test_a_stopping_worker_hands_held_jobs_back_at_once(
    worker_factory, nats_server, tmp_path
) -> None:
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    worker = worker_factory(BODY.format(prefetch=5, ack_wait="60s"))
    with SyncClient(nats_server.url) as client:
        client.enqueue("tests.tasks:block_until_released", str(blocked))
        wait_until(lambda: (blocked / "started").exists(), 20, what="the slot taken")
        jobs = [client.enqueue("tests.tasks:count_run", str(tmp_path)) for _ in range(5)]
        wait_until(lambda: held(worker) == 5, 20, what="five jobs held")
        t0 = time.monotonic()
        worker.stop()
        worker.thread.join(30)
        assert time.monotonic() - t0 < 10  # the 1 s grace, then the close
        assert count(tmp_path) == 0
        (blocked / "release").touch()
        # Another worker runs them long before the 60 s ack_wait: they were handed back
        # (a nak'd job stays "in flight" in consumer info until it is delivered again).
        t0 = time.monotonic()
        worker_factory(BODY.format(prefetch=0, ack_wait="60s"), name="second")
        for job in jobs:
            job.result(timeout=30)
        assert time.monotonic() - t0 < 30
    assert count(tmp_path) == 5


def test_a_paused_queue_hands_held_jobs_back_and_takes_nothing(
    worker_factory, nats_server, tmp_path
) -> None:
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    worker = worker_factory(BODY.format(prefetch=5, ack_wait="60s"))
    with SyncClient(nats_server.url) as client:
        first = client.enqueue("tests.tasks:block_until_released", str(blocked))
        wait_until(lambda: (blocked / "started").exists(), 20, what="the slot taken")
        jobs = [client.enqueue("tests.tasks:count_run", str(tmp_path)) for _ in range(5)]
        wait_until(lambda: held(worker) == 5, 20, what="five jobs held")
        client.pause_queue("default")
        wait_until(lambda: held(worker) == 0, 5, what="the held jobs handed back")
        (blocked / "release").touch()
        assert first.result(timeout=20) == "released"
        time.sleep(0.5)  # the behaviour under test: nothing starts while paused
        assert count(tmp_path) == 0 and held(worker) == 0
        client.resume_queue("default")
        t0 = time.monotonic()
        for job in jobs:
            job.result(timeout=30)
        assert time.monotonic() - t0 < 30  # handed back, not waiting out the 60 s ack_wait
    assert count(tmp_path) == 5
    assert "queue default paused: handing back 5 held job(s)" in worker.log


def test_the_default_prefetch_holds_jobs_only_while_they_are_short(
    worker_factory, nats_server, tmp_path
) -> None:
    body = """
    tasks: {imports: [tests.tasks]}
    queues: {default: {concurrency: 2}}
    """
    worker = worker_factory(body)
    blocked = [tmp_path / "one", tmp_path / "two"]
    with SyncClient(nats_server.url) as client:
        # Long jobs: nothing seen ending yet, so nothing is held beyond the 2 slots.
        long_jobs = []
        for directory in blocked:
            directory.mkdir()
            job = client.enqueue("tests.tasks:block_until_released", str(directory))
            long_jobs.append(job)
            wait_until(lambda d=directory: (d / "started").exists(), 20, what="a long job")
        waiting = [client.enqueue("tests.tasks:add", i, i) for i in range(5)]
        time.sleep(0.5)  # the behaviour under test: no job is held
        assert held(worker) == 0
        assert client.queue_info("default").waiting == 5
        for directory, job in zip(blocked, long_jobs, strict=True):
            (directory / "release").touch()
            assert job.result(timeout=20) == "released"
        for job in waiting:
            job.result(timeout=20)
        # Short jobs: once they are seen ending quickly, the backlog fills.
        peak = 0

        def backlog_seen() -> bool:
            nonlocal peak
            peak = max(peak, held(worker))
            return peak > 0

        jobs = client.enqueue_many("tests.tasks:add", [(i, i) for i in range(3000)])
        wait_until(backlog_seen, 30, interval=0.001, what="jobs held beyond the slots")
        assert peak <= 6  # 3 per slot
        for job in jobs[-10:]:
            job.result(timeout=60)
