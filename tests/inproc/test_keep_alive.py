"""Scenario 7 with the worker in-process: jobs longer than three ack_waits run exactly
once (the +WPI keep-alive)."""

from __future__ import annotations

from pathlib import Path

from naqd import SyncClient
from tests.faults.helpers import runs


def test_jobs_longer_than_three_ack_waits_run_exactly_once(
    worker_factory, nats_server, tmp_path: Path
) -> None:
    worker_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {concurrency: 4, ack_wait: 1s, retries: 3}}
        """,
    )
    with SyncClient(nats_server.url) as client:
        sync_job = client.enqueue("tests.tasks:record", str(tmp_path), 0, 3.5)
        async_job = client.enqueue("tests.tasks:async_record", str(tmp_path), 1, 3.5)
        assert sync_job.result(timeout=30) == 0
        assert async_job.result(timeout=30) == 1
        # A redelivery would have started a second run well before the first ended.
        assert runs(tmp_path) == {0: 1, 1: 1}
        for job in (sync_job, async_job):
            rec = client.record(job.id)
            assert rec is not None and rec.attempts == 1
