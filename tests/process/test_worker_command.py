"""`naqd worker`: the real daemon started from flags, against a real nats-server."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from naqd import SyncClient
from tests.conftest import REPO, Daemon, naqd_executable
from tests.natsserver import NatsServer, free_port

CLEAN_ENV = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}  # no $NAQD_SERVERS


class WorkerDaemon(Daemon):
    """`naqd worker ARGS` in `cwd`, its output in a log file."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        super().__init__(cwd / "unused.yaml", cwd / "worker.log", env)
        self.args = args

    def start(self) -> WorkerDaemon:
        env = {k: v for k, v in os.environ.items() if k != "NAQD_SERVERS"}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()/stop()
        self.proc = subprocess.Popen(
            [naqd_executable(), "worker", *self.args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.config_path.parent,
            env={**env, "PYTHONPATH": str(REPO), **self.extra_env},
        )
        return self


@pytest.fixture
def run_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerDaemon]]:
    daemons: list[WorkerDaemon] = []

    def make(args: list[str], env: dict[str, str] | None = None) -> WorkerDaemon:
        daemon = WorkerDaemon(args, tmp_path, env or {}).start()
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        daemon.stop()


def naqd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [naqd_executable(), *args], capture_output=True, text=True, timeout=60, cwd=cwd,
        env=CLEAN_ENV,
    )  # fmt: skip


@pytest.mark.parametrize("via", ["--servers", "$NAQD_SERVERS"])
def test_worker_from_flags_serves_jobs(
    via: str, nats_server: NatsServer, run_worker: Callable[..., WorkerDaemon]
) -> None:
    args = ["default", "--import", "examples.tasks", "--concurrency", "4"]
    env = {}
    if via == "--servers":
        args += ["--servers", nats_server.url]
    else:
        env["NAQD_SERVERS"] = nats_server.url
    daemon = run_worker(args, env)
    daemon.wait_for_log("ready: queue default concurrency 4")
    with SyncClient(nats_server.url) as client:
        assert client.enqueue("examples.tasks:add", 1, 2).result(timeout=20) == 3
    assert "started scheduler" not in daemon.log  # off unless --scheduler
    daemon.send(signal.SIGTERM)
    assert daemon.wait(30) == 0


def test_flags_override_the_file_for_the_queues_named_and_survive_a_reload(
    nats_server: NatsServer, run_worker: Callable[..., WorkerDaemon], tmp_path: Path
) -> None:
    (tmp_path / "naq.yaml").write_text(
        f"""
nats: {{servers: [{nats_server.url}]}}
tasks: {{imports: [tests.tasks]}}
queues:
  default: {{concurrency: 1, retries: 0}}
  other: {{concurrency: 2}}
metrics: {{listen: "127.0.0.1:{free_port()}"}}
"""
    )
    args = ["default", "--config", "naq.yaml", "--concurrency", "3", "--import", "examples.tasks"]
    daemon = run_worker(args)
    daemon.wait_for_log("ready: queue default concurrency 3")
    with SyncClient(nats_server.url) as client:
        assert client.enqueue("examples.tasks:add", 2, 3).result(timeout=20) == 5
        assert client.enqueue("tests.tasks:add", 1, 1).result(timeout=20) == 2
    assert "queue other" not in daemon.log  # only the queues named are served
    assert "started scheduler" not in daemon.log  # the file's scheduler stays off
    # SIGHUP re-reads the file and applies the same flags: nothing changes.
    daemon.send(signal.SIGHUP)
    daemon.wait_for_log("reload: no child affected")
    daemon.send(signal.SIGTERM)
    assert daemon.wait(30) == 0


def test_a_bad_flag_exits_78_naming_the_flag_and_starts_nothing(tmp_path: Path) -> None:
    proc = naqd("worker", "--concurrency", "0", "--servers", "nats://127.0.0.1:1", cwd=tmp_path)
    assert proc.returncode == 78
    assert proc.stderr == "naqd worker: --concurrency: expected a positive integer, got 0\n"
    assert proc.stdout == ""
    missing = naqd("worker", "--config", "missing.yaml", cwd=tmp_path)
    assert (missing.returncode, missing.stderr) == (78, "missing.yaml: config file not found\n")


def test_print_config_passes_naqd_check(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "queues: {default: {retries: 1}, emails: {concurrency: 64}}\n"
        "schedules: {tick: {task: 'examples.tasks:ping', every: 1m}}\n"
    )
    cases = [
        (
            ["high", "low", "--import", "examples.tasks", "--concurrency", "4", "--processes",
             "2", "--servers", "nats://a:4222,nats://b:4222", "--scheduler"],
            "pools: cli(2x: high 4, low 4); schedules: 0",
        ),
        (["--config", "base.yaml"], "queues: default(1x16), emails(1x64); schedules: 0"),
        (
            ["default", "--config", "base.yaml", "--scheduler", "--processes", "3"],
            "queues: default(3x16); schedules: 1",
        ),
    ]  # fmt: skip
    for i, (args, summary) in enumerate(cases):
        printed = naqd("worker", *args, "--print-config", cwd=tmp_path)
        assert printed.returncode == 0, printed.stderr
        (tmp_path / f"printed{i}.yaml").write_text(printed.stdout)
        check = naqd("check", "--config", f"printed{i}.yaml", cwd=tmp_path)
        assert check.returncode == 0, f"{printed.stdout}\n{check.stderr}"
        assert check.stdout == f"printed{i}.yaml: OK ({summary})\n"


def test_burst_runs_what_is_queued_then_exits_0(nats_server: NatsServer, tmp_path: Path) -> None:
    """`naqd worker --burst`: the queues named are drained, then the daemon exits 0 by
    itself; `--burst --scheduler` is refused (a burst runs no scheduler)."""
    both = naqd("worker", "--burst", "--scheduler", "--servers", nats_server.url, cwd=tmp_path)
    assert both.returncode == 78 and "--burst" in both.stderr
    # Streams exist before the jobs are enqueued, as after any earlier daemon run.
    init = naqd("worker", "default", "--print-config", "--servers", nats_server.url, cwd=tmp_path)
    (tmp_path / "naq.yaml").write_text(init.stdout)
    assert naqd("init", "--config", "naq.yaml", cwd=tmp_path).returncode == 0
    with SyncClient(nats_server.url) as client:
        jobs = [client.enqueue("examples.tasks:add", i, i) for i in range(5)]
        args = ["default", "--import", "examples.tasks", "--servers", nats_server.url]
        # No PYTHONPATH: task modules import from the working directory, as with Celery.
        proc = subprocess.run(
            [naqd_executable(), "worker", *args, "--burst"], capture_output=True, text=True,
            timeout=60, cwd=REPO, env={"PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert [job.result(timeout=1) for job in jobs] == [0, 2, 4, 6, 8]


def test_naqd_run_honours_naqd_servers_like_naqd_worker(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    # The file names a server nobody runs: only $NAQD_SERVERS leads to the real one.
    (tmp_path / "naq.yaml").write_text(
        f"""
nats: {{servers: [nats://127.0.0.1:{free_port()}]}}
tasks: {{imports: [examples.tasks]}}
queues: {{default: {{concurrency: 1}}}}
metrics: {{listen: "127.0.0.1:{free_port()}"}}
"""
    )
    run = subprocess.run(  # the streams, as any earlier daemon would have made them
        [naqd_executable(), "init", "--config", "naq.yaml", "--servers", nats_server.url],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=CLEAN_ENV,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    with SyncClient(nats_server.url) as client:
        job = client.enqueue("examples.tasks:add", 2, 2)  # waits for the burst to run it
    done = subprocess.run(
        [naqd_executable(), "run", "--config", "naq.yaml", "--burst"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**CLEAN_ENV, "NAQD_SERVERS": nats_server.url},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    with SyncClient(nats_server.url) as client:
        assert client.result(job.id, timeout=10) == 4
