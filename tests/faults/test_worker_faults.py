"""Scenarios 1 and 4 and the poison pill: workers killed, a daemon stopped mid-run. Each
asserts that no job is lost and bounds the duplicates. (Scenario 7, jobs longer than
ack_wait, runs in-process: tests/inproc/test_keep_alive.py.)"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from naqd import SyncClient
from tests.faults.helpers import assert_all_ran, runs, worker_pids
from tests.natsserver import wait_until


def test_worker_sigkilled_three_times_loses_no_job(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {concurrency: 8, processes: 2, ack_wait: 2s, retries: 5}}
        """,
        ready_workers=2,
    )
    total = 500
    with SyncClient(nats_server.url) as client:
        jobs = [client.enqueue("tests.tasks:record", str(tmp_path), n, 0.05) for n in range(total)]
        killed: list[int] = []
        for k in range(3):
            wait_until(lambda k=k: len(runs(tmp_path)) >= 60 * (k + 1), 60, what="progress")
            # A replacement that has just become ready may not have finished a job yet
            # (on a loaded machine the survivor can reach the count alone): wait for one.
            alive = wait_until(
                lambda: worker_pids(tmp_path) - set(killed), 30, what="a live worker that ran jobs"
            )
            victim = sorted(alive)[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
            daemon.wait_for_log("died with signal SIGKILL", count=k + 1)
            daemon.wait_for_log("ready: queue", count=3 + k, timeout=30)
        wait_until(lambda: len(runs(tmp_path)) == total, 90, what="all jobs ran")
        # Only jobs in flight on a killed process (8 slots each) may have run twice.
        assert_all_ran(runs(tmp_path), total, max_duplicates=3 * 8)
        assert {client.status(j.id) for j in jobs[::25]} == {"succeeded"}


def test_worker_sigkilled_with_a_full_prefetch_backlog_loses_no_job(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {concurrency: 2, prefetch: 30, ack_wait: 2s}}
        """,
        ready_workers=1,
    )
    total = 80
    with SyncClient(nats_server.url) as client:
        for n in range(total):
            client.enqueue("tests.tasks:record", str(tmp_path), n, 0.05)
        # 2 running and 30 held: the held ones were delivered and never started.
        wait_until(lambda: len(runs(tmp_path)) >= 6, 30, what="progress")
        (victim,) = worker_pids(tmp_path)
        os.kill(victim, signal.SIGKILL)
        daemon.wait_for_log("died with signal SIGKILL")
        wait_until(lambda: len(runs(tmp_path)) == total, 60, what="all jobs ran")
    # Only the 2 jobs running when it died may have run twice; the held ones came back
    # after ack_wait and ran once.
    assert_all_ran(runs(tmp_path), total, max_duplicates=2)


def test_sigterm_hands_queued_jobs_to_a_second_daemon_at_once(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    # ack_wait is long: a job held (not handed back) by the stopping daemon would not
    # reach the second one before the deadlines below.
    config = """
        tasks: {imports: [tests.tasks]}
        queues: {default: {concurrency: 25, processes: 2, ack_wait: 120s}}
        shutdown: {grace_period: 30s}
        """
    first = daemon_factory(config, ready_workers=2, name="first")
    total = 550

    def started() -> int:
        return sum(len(p.read_text().split()) for p in tmp_path.glob("starts-*"))

    with SyncClient(nats_server.url) as client:
        for n in range(total):
            client.enqueue("tests.tasks:record", str(tmp_path), n, 1.0)
        wait_until(lambda: started() >= 50, 30, what="50 jobs running")
        first.send(signal.SIGTERM)
        assert first.wait(40) == 0
        assert "draining: waiting for" in first.log
        ran_in_first = sum(runs(tmp_path).values())
        assert ran_in_first == started()  # every job it started, it finished
        assert 50 <= ran_in_first < total
        daemon_factory(config.replace("concurrency: 25", "concurrency: 100"), name="second")
        wait_until(lambda: len(runs(tmp_path)) == total, 60, what="second daemon finishes")
    assert_all_ran(runs(tmp_path), total, max_duplicates=0)


def test_second_sigterm_hands_running_jobs_back_at_once(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    config = """
        tasks: {imports: [tests.tasks]}
        queues: {default: {concurrency: 2, ack_wait: 120s, retries: 0}}
        shutdown: {grace_period: 60s}
        """
    first = daemon_factory(config, ready_workers=1, name="first")
    with SyncClient(nats_server.url) as client:
        job = client.enqueue("tests.tasks:block_until_released", str(tmp_path))
        wait_until(lambda: (tmp_path / "started").exists(), 20, what="job start")
        first.send(signal.SIGTERM)
        first.wait_for_log("draining: waiting for 1 running job")
        first.send(signal.SIGTERM)
        assert first.wait(20) == 0
        assert "nak so another worker takes it" in first.log
        daemon_factory(config, name="second")
        # Handed back, not counted as an attempt: it runs again despite retries: 0.
        assert job.result(timeout=30) == "rerun"
        rec = client.record(job.id)
    assert rec is not None and rec.attempts == 1


def test_poison_pill_that_kills_its_worker_ends_in_the_dlq(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {concurrency: 2, ack_wait: 1s, retries: 2}}
        """,
        ready_workers=1,
    )
    with SyncClient(nats_server.url) as client:
        job = client.enqueue("tests.tasks:kill_own_worker", str(tmp_path))
        rec = client.wait(job.id, timeout=60)
        assert rec.status == "failed" and rec.error is not None
        assert rec.error.type == "WorkerLost"
        assert [e.type for e in rec.errors] == ["WorkerLost"] * 3
        # 1 + 2 retries; one more when the very first 'running' record (not awaited on
        # a first delivery) had not left the process when it died.
        assert len((tmp_path / "kills").read_text().split()) in (3, 4)
        # A redelivery after a death is logged as one (naqd's own retries are not): the
        # third delivery at least finds the 'running' record the second one stored before
        # it ran (the first died before its lazy notice, so the second is only INFO).
        assert f"job {job.id} tests.tasks:kill_own_worker redelivered (delivery 3)" in daemon.log
        # The daemon keeps serving.
        assert client.enqueue("tests.tasks:add", 1, 1).result(timeout=30) == 2
    assert daemon.log.count("died with signal SIGKILL") in (3, 4)


def test_job_lost_at_max_deliveries_is_recovered_from_the_advisory(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    """Without a stored record the worker cannot count attempts; the server stops at
    max_deliveries and its advisory, captured in a stream, brings the job to the DLQ."""
    daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {concurrency: 2, ack_wait: 1s, retries: 1, max_deliveries: 2}}
        """,
        ready_workers=1,
    )
    import json
    import subprocess

    from tests.inproc.test_dead_letters import dlq_cli

    with SyncClient(nats_server.url) as client:
        job = client.enqueue("tests.tasks:kill_own_worker", str(tmp_path), result_ttl=0)

        def entry() -> dict | None:
            out: subprocess.CompletedProcess[str] = dlq_cli(
                nats_server.url, "show", job.id, "--json"
            )
            return json.loads(out.stdout) if out.returncode == 0 else None

        found = wait_until(entry, 60, interval=0.5, what="dead letter from the advisory")
        assert found["reason"] == "worker_lost" and "max_deliveries" in found["error"]["message"]
        assert len((tmp_path / "kills").read_text().split()) == 2
        assert client.enqueue("tests.tasks:add", 2, 2).result(timeout=30) == 4


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; its new parent reaps it


def test_supervisor_killed_children_finish_their_jobs_and_exit(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {concurrency: 2}}
        shutdown: {grace_period: 30s}
        """,
        ready_workers=1,
    )
    with SyncClient(nats_server.url) as client:
        job = client.enqueue("tests.tasks:block_until_released", str(tmp_path))
        wait_until(lambda: (tmp_path / "started").exists(), 20, what="job start")
        [child] = [int(p) for p in (tmp_path / "started").read_text().split()]
        daemon.proc.kill()  # SIGKILL: no chance to tell the children anything
        daemon.wait(10)
        daemon.wait_for_log("supervisor is gone: stopping")
        assert _alive(child)  # still finishing its job
        (tmp_path / "release").touch()
        assert job.result(timeout=30) == "released"
        wait_until(lambda: not _alive(child), 30, what="orphaned worker exits")
