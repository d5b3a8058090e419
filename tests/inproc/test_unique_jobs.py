"""Unique jobs with the worker in-process: 50 concurrent enqueues with one key run once,
the key is free again when the job ends, a derived key compares task and arguments."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from naqd import Client, SyncClient
from tests.natsserver import wait_until

BODY = """
tasks: {imports: [tests.tasks]}
queues: {default: {concurrency: 4, ack_wait: 5s}}
scheduler: {enabled: false}
shutdown: {grace_period: 5s}
"""


def runs(directory: Path) -> int:
    path = directory / "runs"
    return len(path.read_text().split()) if path.exists() else 0


def test_fifty_concurrent_enqueues_with_one_key_run_once(
    worker_factory, nats_server, tmp_path: Path
) -> None:
    worker_factory(BODY)
    task, arg = "tests.tasks:block_until_released", str(tmp_path)

    async def go() -> set[str]:
        async with Client(nats_server.url) as client:
            jobs = await asyncio.gather(
                *(client.enqueue(task, arg, unique_key="report-42") for _ in range(50))
            )
            # The job blocks until released, so every enqueue saw it queued or running.
            (tmp_path / "release").touch()
            await jobs[0].result(timeout=20)
            return {j.id for j in jobs}

    ids = asyncio.run(go())
    assert len(ids) == 1
    assert len((tmp_path / "started").read_text().split()) == 1
    # The job ended, so the key is free: the next enqueue is a new job.
    with SyncClient(nats_server.url) as client:
        again = client.enqueue("tests.tasks:count_run", str(tmp_path), unique_key="report-42")
        assert again.id not in ids
        again.result(timeout=20)
    assert runs(tmp_path) == 1


def test_derived_key_compares_task_and_arguments(worker_factory, nats_server, tmp_path) -> None:
    worker_factory(BODY)
    with SyncClient(nats_server.url) as client:
        first = client.enqueue("tests.tasks:block_until_released", str(tmp_path), unique_for=60)
        wait_until(lambda: (tmp_path / "started").exists(), 20, what="the first job")
        same = client.enqueue("tests.tasks:block_until_released", str(tmp_path), unique_for=60)
        other = client.enqueue("tests.tasks:add", 1, 2, unique_for=60)
        assert same.id == first.id  # running: the same job
        assert other.id != first.id and other.result(timeout=20) == 3
        (tmp_path / "release").touch()
        assert first.result(timeout=20) == "released"
        with pytest.raises(ValueError, match="unique_for"):
            client.enqueue("tests.tasks:add", 1, 2, unique_for=0)
        with pytest.raises(TypeError, match="enqueue_at"):
            client.enqueue_in(5, "tests.tasks:add", 1, 2, unique_key="k", unique_mode="debounce")
        with pytest.raises(ValueError, match="unique_mode must be one of"):
            client.enqueue("tests.tasks:add", 1, 2, unique_mode="once")


def test_a_lock_expires_after_unique_for(worker_factory, nats_server, tmp_path) -> None:
    # A queue with no worker: the first job stays queued, its lock expires after 1 s.
    worker_factory(BODY)
    with SyncClient(nats_server.url) as client:
        client.declare_queue("idle")  # its workers "come later"
        first = client.enqueue("tests.tasks:add", 1, 1, queue="idle", unique_key="k", unique_for=1)
        assert client.enqueue("tests.tasks:add", 1, 1, queue="idle", unique_key="k").id == first.id

        def new_job() -> bool:
            return client.enqueue("tests.tasks:add", 1, 1, queue="idle", unique_key="k").id != (
                first.id
            )

        wait_until(new_job, 10, interval=0.2, what="the lock to expire")
