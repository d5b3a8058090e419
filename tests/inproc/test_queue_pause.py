"""Pausing a queue with the worker in-process: jobs accumulate while paused, nothing is lost,
all of them run after resume; the pause survives a worker restart."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from naqd import SyncClient
from tests.conftest import REPO, naqd_executable
from tests.natsserver import wait_until

BODY = """
tasks: {imports: [tests.tasks]}
queues: {default: {concurrency: 4, ack_wait: 5s}}
scheduler: {enabled: false}
shutdown: {grace_period: 5s}
"""


def naqd_cli(*argv: str) -> str:
    out = subprocess.run(
        [naqd_executable(), *argv], capture_output=True, text=True, cwd=REPO, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def runs(directory: Path) -> int:
    path = directory / "runs"
    return len(path.read_text().split()) if path.exists() else 0


def test_a_paused_queue_accumulates_and_drains_after_resume(
    worker_factory, nats_server, tmp_path: Path
) -> None:
    worker = worker_factory(BODY)
    assert "paused default" in naqd_cli("queues", "pause", "default", "--servers", nats_server.url)
    with SyncClient(nats_server.url) as client:
        assert client.queue_info("default").paused
        jobs = [client.enqueue("tests.tasks:count_run", str(tmp_path)) for _ in range(20)]
        wait_until(lambda: client.queue_info("default").waiting == 20, 10, what="20 waiting")
        # A restarted worker with a changed ack_wait updates the consumer: the queue
        # must stay paused.
        worker.stop()
        again = worker_factory(BODY.replace("ack_wait: 5s", "ack_wait: 6s"), name="again")
        time.sleep(1.5)  # the behaviour under test: nothing runs while paused
        assert runs(tmp_path) == 0
        assert client.queue_info("default").waiting == 20
        rows = json.loads(naqd_cli("queues", "--json", "--servers", nats_server.url))
        assert {r["queue"]: r["pending"] for r in rows}["default"] == 20
        naqd_cli("queues", "resume", "default", "--servers", nats_server.url)
        for job in jobs:
            job.result(timeout=30)
        assert runs(tmp_path) == 20
        info = client.queue_info("default")
        assert not info.paused and info.waiting == 0
    assert "answered" not in again.log  # a paused consumer is no error for the puller
