"""Cancel and progress, with the worker in-process: a queued job never runs, a running
coroutine is cancelled, a thread job stops when it checks its flag, progress is visible
while a job runs, and the CLI shows and cancels jobs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from naqd import JobCancelled, SyncClient
from tests.conftest import REPO, naqd_executable
from tests.natsserver import wait_until

ONE_SLOT = """
tasks: {imports: [tests.tasks]}
queues: {default: {concurrency: 1, ack_wait: 5s, retries: 2}}
scheduler: {enabled: false}
shutdown: {grace_period: 5s}
"""


def started(tmp_path: Path) -> bool:
    return (tmp_path / "started").exists()


def test_a_queued_job_cancelled_before_it_starts_never_runs(
    worker_factory, nats_server, tmp_path: Path
) -> None:
    worker_factory(ONE_SLOT)
    blocker_dir, runs_dir = tmp_path / "blocker", tmp_path / "runs"
    blocker_dir.mkdir()
    runs_dir.mkdir()
    with SyncClient(nats_server.url) as client:
        blocker = client.enqueue("tests.tasks:block_until_released", str(blocker_dir))
        wait_until(lambda: (blocker_dir / "started").exists(), 20, what="the blocker")
        queued = client.enqueue("tests.tasks:count_run", str(runs_dir))
        assert client.status(queued.id) == "queued"
        assert client.cancel(queued.id) is True
        assert client.status(queued.id) == "cancelled"
        (blocker_dir / "release").touch()
        assert blocker.result(timeout=20) == "released"
        # The worker takes the cancelled job next, skips it and acks it.
        marker = queued.id
        wait_until(lambda: _stream_empty(nats_server.url), 20, what="the job to be acked")
        with pytest.raises(JobCancelled, match=marker):
            queued.result(timeout=5)
        assert not (runs_dir / "runs").exists(), "a cancelled job ran"
        assert client.cancel(queued.id) is False  # already final


def _stream_empty(url: str) -> bool:
    import asyncio

    import nats

    async def go() -> bool:
        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().stream_info("NAQD_JOBS")
            return info.state.messages == 0
        finally:
            await nc.close()

    return asyncio.run(go())


def test_a_running_coroutine_job_is_cancelled(worker_factory, nats_server, tmp_path) -> None:
    worker_factory(ONE_SLOT)
    with SyncClient(nats_server.url) as client:
        job = client.enqueue("tests.tasks:async_wait_forever", str(tmp_path))
        wait_until(lambda: started(tmp_path), 20, what="the job to start")
        assert client.cancel(job.id) is True
        with pytest.raises(JobCancelled):
            job.result(timeout=20)
        assert (tmp_path / "finally").exists()
        status = client.status(job.id)
        assert status == "cancelled" and status.progress == 0.25
        # The slot is free again: the worker runs the next job.
        assert client.enqueue("tests.tasks:add", 1, 2).result(timeout=20) == 3


def test_a_running_thread_job_stops_when_it_checks_its_flag(
    worker_factory, nats_server, tmp_path
) -> None:
    worker_factory(ONE_SLOT)
    with SyncClient(nats_server.url) as client:
        job = client.enqueue("tests.tasks:thread_until_cancelled", str(tmp_path))
        wait_until(lambda: started(tmp_path), 20, what="the job to start")
        # 'running' is written once a job has run for 50 ms (naqd/worker/notice.py).
        wait_until(lambda: client.status(job.id) == "running", 10, what="status running")
        assert client.cancel(job.id) is True
        with pytest.raises(JobCancelled):
            job.result(timeout=20)
        rec = client.record(job.id)
        assert rec.status == "cancelled" and rec.attempts == 1  # not retried


def test_progress_is_visible_while_the_job_runs(worker_factory, nats_server, tmp_path) -> None:
    worker_factory(ONE_SLOT)
    with SyncClient(nats_server.url) as client:
        job = client.enqueue("tests.tasks:progress_until_released", str(tmp_path))

        def reported() -> bool:
            s = client.status(job.id)
            return s == "running" and s.progress == 0.4 and s.message == "resizing"

        wait_until(reported, 20, what="progress 0.4 'resizing'")
        out = _naqd("job", job.id, "--servers", nats_server.url)
        assert f"job       {job.id}" in out and "status    running  40% resizing" in out
        (tmp_path / "release").touch()
        assert job.result(timeout=20) == "released"
        final = client.status(job.id)
        assert final == "succeeded" and (final.progress, final.message) == (1.0, "done")


def test_cli_cancels_a_job(worker_factory, nats_server, tmp_path) -> None:
    worker_factory(ONE_SLOT)
    with SyncClient(nats_server.url) as client:
        job = client.enqueue("tests.tasks:async_wait_forever", str(tmp_path))
        wait_until(lambda: started(tmp_path), 20, what="the job to start")
        assert _naqd("job", "cancel", job.id, "--servers", nats_server.url).strip() == (
            f"cancelled {job.id}"
        )
        with pytest.raises(JobCancelled):
            job.result(timeout=20)
        done = subprocess.run(
            [naqd_executable(), "job", "cancel", job.id, "--servers", nats_server.url],
            capture_output=True, text=True, cwd=REPO, timeout=30,
        )  # fmt: skip
        assert done.returncode == 1 and "already finished" in done.stderr


def _naqd(*argv: str) -> str:
    out = subprocess.run(
        [naqd_executable(), *argv], capture_output=True, text=True, cwd=REPO, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_job_cancelled_while_no_worker_runs_is_skipped_after_start(
    worker_factory, nats_server, tmp_path
) -> None:
    first = worker_factory(ONE_SLOT, name="first")
    first.stop()  # the stream and buckets exist; nothing consumes now
    with SyncClient(nats_server.url) as client:
        job = client.enqueue("tests.tasks:count_run", str(tmp_path))
        assert client.cancel(job.id) is True
        worker_factory(ONE_SLOT, name="second")
        # The new worker loads the cancel records at start and skips the job.
        wait_until(lambda: _stream_empty(nats_server.url), 20, what="the job to be acked")
        with pytest.raises(JobCancelled):
            job.result(timeout=5)
        assert client.enqueue("tests.tasks:add", 1, 1).result(timeout=20) == 2
    assert not (tmp_path / "runs").exists(), "a cancelled job ran"
