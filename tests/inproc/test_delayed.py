"""Delayed jobs with the worker in-process: a delayed job survives a restart of every
worker and never runs early; a delayed job can be cancelled before it fires."""

from __future__ import annotations

import time
from pathlib import Path

from naqd import SyncClient

BODY = """
tasks: {imports: [tests.tasks]}
queues: {default: {concurrency: 4, retries: 0}}
scheduler: {leader_election: {lease: 2s, renew_every: 0.5s}}
shutdown: {grace_period: 5s}
"""


def test_enqueue_in_runs_after_the_delay_and_survives_a_restart(
    worker_factory, nats_server, tmp_path: Path
) -> None:
    first = worker_factory(BODY, name="first")
    with SyncClient(nats_server.url) as client:
        enqueued = time.time()
        job = client.enqueue_in(3, "tests.tasks:count_run", str(tmp_path))
        assert [d.id for d in client.delayed()] == [job.id]
        first.stop()  # every naqd process is gone while the job waits
        worker_factory(BODY, name="second")
        job.result(timeout=30)
        rec = client.record(job.id)
        assert client.delayed() == []
    assert rec is not None and rec.status == "succeeded"
    assert rec.started_at is not None and rec.started_at >= enqueued + 3
    assert len((tmp_path / "runs").read_text().split()) == 1


def test_cancel_a_delayed_job_before_it_fires(worker_factory, nats_server) -> None:
    worker_factory(BODY)
    with SyncClient(nats_server.url) as client:
        job = client.enqueue_in(60, "tests.tasks:add", 1, 2)
        keep = client.enqueue_in(60, "tests.tasks:add", 3, 4)
        assert client.cancel(job.id) is True
        assert [d.id for d in client.delayed()] == [keep.id]
        assert client.cancel(job.id) is False
        assert client.status(job.id) == "cancelled"  # it never ran (docs/job-control.md)
