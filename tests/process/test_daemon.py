"""The real `naqd` daemon as a subprocess, driven with real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from naqd import SyncClient
from naqd.supervisor.embedded import server_max_payload
from tests.conftest import REPO, naqd_executable
from tests.natsserver import free_port, wait_until


def pids_of(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_two_processes_times_four_run_eight_in_parallel_never_more(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {concurrency: 4, processes: 2, retries: 0}}
        """,
        ready_workers=2,
    )
    work = tmp_path / "overlap"
    work.mkdir()
    running = lambda: list(work.glob("*.running"))  # noqa: E731
    with SyncClient(nats_server.url) as client:
        jobs = [client.enqueue("tests.tasks:overlap", str(work)) for _ in range(12)]
        # Eight run at once, four in each process, while four more wait in the queue.
        wait_until(lambda: len(running()) == 8, 20, what="8 jobs running")
        per_pid: dict[str, int] = {}
        for path in running():
            pid = path.name.split("-")[0]
            per_pid[pid] = per_pid.get(pid, 0) + 1
        assert sorted(per_pid.values()) == [4, 4]
        (work / "release").touch()
        results = [j.result(timeout=30) for j in jobs]
    # No job ever saw more than eight running.
    assert max(r["peak"] for r in results) == 8


def test_sigterm_lets_running_jobs_finish_and_exits_zero(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {concurrency: 2, processes: 1}}
        shutdown: {grace_period: 30s}
        """,
        ready_workers=1,
    )
    with SyncClient(nats_server.url) as client:
        job = client.enqueue("tests.tasks:block_until_released", str(tmp_path))
        wait_until(lambda: (tmp_path / "started").exists(), 20, what="job start")
        daemon.send(signal.SIGTERM)
        daemon.wait_for_log("draining: waiting for 1 running job")
        assert daemon.proc.poll() is None  # still waiting for the job
        (tmp_path / "release").touch()
        assert daemon.wait(30) == 0
        assert job.result(timeout=10) == "released"
    assert len(pids_of(tmp_path / "started")) == 1


def test_killed_worker_is_restarted_and_its_job_runs_again(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {concurrency: 2, processes: 1, ack_wait: 2s, retries: 2}}
        """,
        ready_workers=1,
    )
    with SyncClient(nats_server.url) as client:
        job = client.enqueue("tests.tasks:block_until_released", str(tmp_path))
        wait_until(lambda: (tmp_path / "started").exists(), 20, what="job start")
        # Once its 'running' record is written (after 50 ms), the lost attempt is counted.
        wait_until(lambda: client.status(job.id) == "running", 10, what="status running")
        [victim] = pids_of(tmp_path / "started")
        os.kill(victim, signal.SIGKILL)
        daemon.wait_for_log("died with signal SIGKILL")
        daemon.wait_for_log("ready: queue", count=2)
        assert job.result(timeout=30) == "rerun"
        rec = client.record(job.id)
    pids = pids_of(tmp_path / "started")
    assert len(pids) == 2 and pids[0] == victim and pids[1] != victim
    assert rec is not None and rec.attempts == 2


def test_embedded_server_starts_serves_and_stops(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "naq.yaml"
    config.write_text(
        f"""
nats: {{embedded: {{listen: "127.0.0.1:{port}", store_dir: {tmp_path / "nats"}}}}}
tasks: {{imports: [tests.tasks], max_payload: 4KiB}}
queues: {{default: {{concurrency: 2, processes: 1}}}}
"""
    )
    log = tmp_path / "naqd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [naqd_executable(), "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            wait_until(lambda: "ready: queue" in log.read_text(), 20, what="worker ready")
            with SyncClient(f"nats://127.0.0.1:{port}") as client:
                assert client.enqueue("tests.tasks:add", 20, 22).result(timeout=10) == 42
                # The server takes more than tasks.max_payload, so a producer that ignores
                # the limit hears naqd's answer (a record) instead of a refused publish.
                assert client._client.nc.max_payload == server_max_payload(4096) > 4096
                big = {"id": "big", "task": "tests.tasks:add", "queue": "default",
                       "args": ["x" * 5000, "y"]}  # fmt: skip
                publish = client._client._js.publish(
                    "naqd.jobs.default", json.dumps(big).encode(), headers={"Nats-Msg-Id": "big"}
                )
                client._run(publish)
                rec = client.wait("big", timeout=10)
                assert rec.status == "failed" and "too large" in rec.error.message
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert "embedded nats-server ready" in text
    assert text.index("naqd stopped") < text.index("embedded nats-server stopped")
    assert (tmp_path / "nats" / "jetstream").is_dir()


def test_check_exits_78_with_line_numbers(tmp_path: Path) -> None:
    bad = tmp_path / "naq.yaml"
    bad.write_text("queues:\n  default:\n    concurrency: many\n    procesess: 2\n")
    proc = subprocess.run(
        [naqd_executable(), "check", "--config", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 78
    assert f"{bad}:3:18: queues.default.concurrency: expected a positive integer" in proc.stderr
    assert 'did you mean "processes"' in proc.stderr
    good = subprocess.run(
        [naqd_executable(), "check", "--config", str(REPO / "config" / "naq.yaml")],
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, good.stderr


def test_run_with_broken_config_exits_78(tmp_path: Path) -> None:
    bad = tmp_path / "naq.yaml"
    bad.write_text("queues: {default: {timeout: soon}}\n")
    proc = subprocess.run(
        [naqd_executable(), "--config", str(bad)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 78 and "queues.default.timeout" in proc.stderr


def test_config_option_before_the_command(tmp_path: Path) -> None:
    proc = subprocess.run(
        [naqd_executable(), "--config", str(REPO / "config" / "naq.yaml"), "check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_cli_reports_unreachable_nats_in_one_line() -> None:
    proc = subprocess.run(
        [naqd_executable(), "enqueue", "tests.tasks:add", "1", "2",
         "--servers", f"nats://127.0.0.1:{free_port()}", "--connect-timeout", "1"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 69
    assert proc.stderr.startswith("naqd: cannot connect to NATS") and "Traceback" not in proc.stderr


def test_cli_rejects_bad_kwargs_without_traceback(nats_server) -> None:
    proc = subprocess.run(
        [naqd_executable(), "enqueue", "tests.tasks:add", "--kwargs", "{nope",
         "--servers", nats_server.url],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 64 and "--kwargs is not valid JSON" in proc.stderr
