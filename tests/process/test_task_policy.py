"""A typed task's own policy (`@naqd.task(...)`) under the real daemon: `naqd run
--config` and `naqd worker --import` behave alike for the same task, whatever the
queue's YAML says, and however the job was enqueued (by name, from the CLI)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from naqd import JobFailed, SyncClient
from tests.conftest import REPO, Daemon, naqd_executable
from tests.natsserver import NatsServer
from tests.process.test_worker_command import WorkerDaemon, run_worker  # noqa: F401


@pytest.mark.parametrize("command", ["run --config", "worker --import"])
def test_the_same_task_behaves_alike_under_run_and_worker(
    command: str,
    nats_server: NatsServer,
    daemon_factory: Callable[..., Daemon],
    run_worker: Callable[..., WorkerDaemon],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    if command == "run --config":
        # The YAML would retry 5 times, 30 s apart: the task's own policy must win.
        daemon_factory(
            """
            tasks: {imports: [tests.typed_tasks]}
            queues:
              default: {retries: 5, backoff: [30s]}
              typed: {retries: 5, backoff: [30s]}
            """,
            ready_workers=2,
        )
    else:  # no YAML at all: naqd's defaults (3 retries, exponential from 1 s)
        daemon = run_worker(
            ["default", "typed", "--import", "tests.typed_tasks", "--servers", nats_server.url]
        )
        # Both queues in one process (a pool, as `naqd worker a b` serves them): one line.
        daemon.wait_for_log("queue typed concurrency")
    bad, flaky = tmp_path / "bad", tmp_path / "flaky"
    bad.mkdir()
    flaky.mkdir()
    with SyncClient(nats_server.url) as client:
        # By name, from a producer that never imported the task's module.
        job = client.enqueue("tests.typed_tasks:send_email", str(bad), "no-at")
        with pytest.raises(JobFailed) as info:
            job.result(timeout=20)
        assert info.value.error_type == "InvalidAddress"
        assert len((bad / "runs").read_text().splitlines()) == 1  # dont_retry_on
        job = client.enqueue("tests.typed_tasks:flaky", str(flaky))
        assert job.result(timeout=20) == 3  # retries=2, backoff 0.05 s: not 30 s, not 1 s
        record = client.record(job.id)
        assert record is not None and record.attempts == 3

    # The CLI imports the task's module from the working directory: the task's own
    # queue ("typed") applies without --queue.
    def enqueue(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [naqd_executable(), "enqueue", "tests.typed_tasks:double", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            env={"PATH": "/usr/bin:/bin", "NAQD_SERVERS": nats_server.url},
        )

    out = enqueue("21", "--wait", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["result"] == 42
    wrong = enqueue("1", "2")  # bound against the signature: nothing is sent
    assert wrong.returncode == 64 and "too many positional arguments" in wrong.stderr
