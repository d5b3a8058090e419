"""Crash loops, config boot errors and recycling, with the real daemon."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from naqd import SyncClient
from tests.faults.helpers import assert_all_ran, runs
from tests.natsserver import wait_until


def test_bad_task_import_stops_the_daemon_with_78(daemon_factory) -> None:
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.no_such_module]}
        queues: {default: {processes: 2}}
        """
    )
    assert daemon.wait(30) == 78
    log = daemon.log
    assert "cannot import task module 'tests.no_such_module'" in log
    assert "ModuleNotFoundError" in log
    assert "stopping naqd with exit code 78" in log
    assert "restarting in" not in log  # no respawn storm


def test_thread_past_its_timeout_fails_the_job_and_recycles_the_process(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues:
          default:
            concurrency: 2
            timeout: 1s
            retries: 1
            backoff: [100ms]
        shutdown: {grace_period: 30s}
        """,
        ready_workers=1,
    )
    with SyncClient(nats_server.url) as client:
        job = client.enqueue("tests.tasks:sleep_past_timeout", str(tmp_path), 600)
        rec = client.wait(job.id, timeout=60)
        assert rec.status == "failed" and rec.attempts == 2
        assert [e.type for e in rec.errors] == ["JobTimeout", "JobTimeout"]
        assert "recycles itself" in rec.errors[0].message
        # Each attempt ran in its own process: the stuck one was replaced.
        pids = (tmp_path / "stuck").read_text().split()
        assert len(pids) == 2 and pids[0] != pids[1]
        daemon.wait_for_log("recycled; starting a new one", count=2, timeout=30)
        assert client.enqueue("tests.tasks:add", 1, 2).result(timeout=30) == 3
    assert "died with" not in daemon.log  # recycles are not crashes


LIMIT = "max_jobs_per_process: 10, max_jobs_jitter: 0"


@pytest.mark.parametrize(
    "config",
    [
        f"queues: {{default: {{concurrency: 2, {LIMIT}, ack_wait: 90s}}}}",
        # A pool counts its jobs too before a held job may start.
        pytest.param(
            f"queues: {{default: {{concurrency: 2, ack_wait: 90s}}}}\n"
            f"pools: {{one: {{queues: [default], {LIMIT}}}}}",
        ),
    ],
    ids=["queue", "pool"],
)
def test_max_jobs_per_process_recycles_without_losing_jobs(
    daemon_factory, nats_server, tmp_path: Path, config: str
) -> None:
    # Short jobs, so the default prefetch holds some: a recycling process hands them back
    # at once and starts none of them, so no process runs more than 10 + 1 in flight.
    daemon = daemon_factory(f"tasks: {{imports: [tests.tasks]}}\n{config}\n", ready_workers=1)
    with SyncClient(nats_server.url) as client:
        for n in range(35):
            client.enqueue("tests.tasks:record", str(tmp_path), n)
        # A job a recycling process held instead of handing back would wait out ack_wait.
        wait_until(lambda: len(runs(tmp_path)) == 35, 45, what="all jobs ran")
    assert_all_ran(runs(tmp_path), 35, max_duplicates=0)
    # Each process ran its 10 jobs plus at most the one still running in its other slot.
    per_process = [len(p.read_text().split()) for p in tmp_path.glob("runs-*")]
    assert len(per_process) >= 4 and max(per_process) <= 10 + 1, per_process
    assert daemon.log.count("ran 10 jobs (max_jobs_per_process)") >= 3
    assert "died with" not in daemon.log


def test_check_accepts_the_delivery_keys(tmp_path: Path) -> None:
    from tests.conftest import naqd_executable

    config = tmp_path / "naq.yaml"
    config.write_text(
        """
queues:
  default:
    retries: 5
    backoff: {strategy: linear, base: 10s, max: 5m, jitter: 0.2}
    retry_on: [OSError, TimeoutError]
    dont_retry_on: [myapp.errors.Fatal]
    max_deliveries: 10
    max_jobs_per_process: 1000
    max_memory_per_process: 512MiB
  emails: {backoff: [5s, 30s, 5m], max_deliveries: 2, retries: 4}
dead_letters: {max_age: 14d}
"""
    )
    proc = subprocess.run(
        [naqd_executable(), "check", "--config", str(config)], capture_output=True, text=True
    )
    assert proc.returncode == 78
    assert "queues.emails.max_deliveries: must be at least retries + 1 (5)" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_replicas_the_server_cannot_provide_stop_the_daemon_with_78(
    nats_server, tmp_path: Path
) -> None:
    from tests.conftest import Daemon

    config = tmp_path / "naq.yaml"
    config.write_text(f"nats: {{servers: [{nats_server.url}], replicas: 3}}\n")
    daemon = Daemon(config, tmp_path / "naqd.log").start()
    try:
        assert daemon.wait(30) == 78
    finally:
        daemon.stop()
    assert "NATS refused naqd's streams" in daemon.log
    assert "check nats.replicas" in daemon.log and "restart #" not in daemon.log


def test_max_memory_per_process_recycles_after_the_job(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {concurrency: 1, max_memory_per_process: 1MiB, ack_wait: 90s}}
        """,
        ready_workers=1,
    )
    with SyncClient(nats_server.url) as client:
        for n in range(3):
            client.enqueue("tests.tasks:record", str(tmp_path), n)
        wait_until(lambda: len(runs(tmp_path)) == 3, 45, what="all jobs ran")
    assert_all_ran(runs(tmp_path), 3, max_duplicates=0)
    assert len(list(tmp_path.glob("runs-*"))) == 3  # every process is far above 1 MiB
    daemon.wait_for_log("(max_memory_per_process)", count=3)


def test_sigterm_while_nats_is_unreachable_exits_promptly(tmp_path: Path) -> None:
    import signal

    from tests.conftest import Daemon
    from tests.natsserver import free_port

    config = tmp_path / "naq.yaml"
    config.write_text(
        f"nats: {{servers: [nats://127.0.0.1:{free_port()}]}}\nshutdown: {{grace_period: 60s}}\n"
        "scheduler: {enabled: false}\n"  # the worker's boot is under test
    )
    daemon = Daemon(config, tmp_path / "naqd.log").start()
    try:
        daemon.wait_for_log("Connection refused")
        daemon.send(signal.SIGTERM)
        assert daemon.wait(20) == 0  # not grace_period + the kill margin
    finally:
        daemon.stop()
    assert "worker stopped before it could reach NATS" in daemon.log
