"""The CLI's contract with scripts: --version, --json, one exit code per outcome
(docs/operations.md#exit-codes), confirmations, closed pipes, and `naqd init` before any
daemon ran. Against a real nats-server; no daemon is needed for most of it."""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from naqd import SyncClient, __version__
from naqd.client import NotInitialized
from tests.conftest import REPO, naqd_executable

ENV = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}


def naqd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [naqd_executable(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def config(nats_server, tmp_path: Path) -> Path:
    path = tmp_path / "naq.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            nats: {{servers: ["{nats_server.url}"]}}
            tasks: {{imports: [tests.tasks]}}
            queues:
              default: {{concurrency: 1}}
              high: {{concurrency: 1, priorities: [urgent, default]}}
            schedules:
              nightly: {{cron: "0 3 * * *", task: "tests.tasks:add", args: [1, 2]}}
            """
        )
    )
    return path


def test_version() -> None:
    out = naqd("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"naqd {__version__}"


def test_enqueue_before_any_daemon_fails_fast_then_init_makes_it_work(
    nats_server, config: Path
) -> None:
    started = time.monotonic()
    out = naqd("enqueue", "tests.tasks:add", "1", "2", "--servers", nats_server.url)
    assert out.returncode == 69, out.stderr
    assert "streams do not exist yet" in out.stderr and "naqd init" in out.stderr
    assert "Traceback" not in out.stderr
    with SyncClient(nats_server.url, publish_deadline=30) as client:
        t0 = time.monotonic()
        with pytest.raises(NotInitialized, match="do not exist yet"):
            client.enqueue("tests.tasks:add", 1, 2)
        assert time.monotonic() - t0 < 3, "waited out the publish deadline"
    assert time.monotonic() - started < 15

    init = naqd("init", "--config", str(config), "--json")
    assert init.returncode == 0, init.stderr
    made = json.loads(init.stdout)
    assert {"NAQD_JOBS", "NAQD_DLQ", "KV_naqd_results", "KV_naqd_leader"} <= set(made["streams"])
    assert made["consumers"] == ["q-default", "q-high", "q-high~urgent"]
    again = naqd("init", "--config", str(config))  # idempotent
    assert again.returncode == 0 and again.stdout.startswith("ready: "), again.stderr

    queued = naqd("enqueue", "tests.tasks:add", "1", "2", "--servers", nats_server.url, "--json")
    assert queued.returncode == 0, queued.stderr
    job_id = json.loads(queued.stdout)["id"]
    assert json.loads(queued.stdout)["created"] is True
    args = ("enqueue", "tests.tasks:add", "1", "2", "--servers", nats_server.url, "--json")
    unique = ("--unique-key", "k1", "--unique-mode", "throttle", "--unique-for", "60")
    first = json.loads(naqd(*args, *unique).stdout)
    second = json.loads(naqd(*args, *unique).stdout)
    assert second == {"id": first["id"], "created": False}
    rows = json.loads(naqd("queues", "--config", str(config), "--json").stdout)
    assert {r["queue"]: r["pending"] for r in rows}["default"] == 2
    assert (
        json.loads(naqd("job", job_id, "--servers", nats_server.url, "--json").stdout)["status"]
        == "queued"
    )


def test_not_found_is_exit_3_everywhere(nats_server, config: Path) -> None:
    assert naqd("init", "--config", str(config)).returncode == 0
    url = nats_server.url
    cases = [
        ("queues", "pause", "nosuch"),
        ("queues", "resume", "nosuch"),
        ("delayed", "cancel", "nosuch"),
        ("dlq", "show", "nosuch"),
        ("dlq", "requeue", "nosuch"),
        ("schedules", "trigger", "nosuch"),
        ("job", "nosuch"),
    ]
    for case in cases:
        out = naqd(*case, "--servers", url)
        assert out.returncode == 3, (case, out.returncode, out.stderr)
        assert "Traceback" not in out.stderr and "cancelled" not in out.stdout, case

    # A real delayed job: cancelled once (0), then it is gone (3).
    with SyncClient(url) as client:
        job = client.enqueue_in(3600, "tests.tasks:add", 1, 2)
    first = naqd("delayed", "cancel", job.id, "--servers", url, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"id": job.id, "cancelled": True}
    assert naqd("delayed", "cancel", job.id, "--servers", url).returncode == 3


def test_json_on_commands_that_print_data(nats_server, config: Path) -> None:
    assert naqd("init", "--config", str(config)).returncode == 0
    url = nats_server.url
    check = json.loads(naqd("check", "--config", str(config), "--json").stdout)
    assert check["ok"] and set(check["queues"]) == {"default", "high"}
    paused = naqd("queues", "pause", "default", "--servers", url, "--json")
    assert json.loads(paused.stdout) == {"queue": "default", "paused": True}, paused.stderr
    rows = json.loads(naqd("queues", "--servers", url, "--json").stdout)
    assert {r["queue"]: r["paused"] for r in rows}["default"] is True
    resumed = naqd("queues", "resume", "default", "--servers", url, "--json")
    assert json.loads(resumed.stdout) == {"queue": "default", "paused": False}
    trig = naqd("schedules", "trigger", "nightly", "--config", str(config), "--json")
    assert json.loads(trig.stdout)["job_id"].startswith("cron.nightly.manual."), trig.stderr
    listed = json.loads(naqd("delayed", "--servers", url, "--json").stdout)
    assert listed == []
    requeued = naqd("dlq", "requeue", "--all", "default", "--servers", url, "--json")
    assert json.loads(requeued.stdout) == {"requeued": []}


def test_dlq_purge_asks_for_confirmation(nats_server, config: Path) -> None:
    assert naqd("init", "--config", str(config)).returncode == 0
    url = nats_server.url
    refused = naqd("dlq", "purge", "default", "--servers", url)  # stdin is not a terminal
    assert refused.returncode == 64 and "--yes" in refused.stderr
    done = naqd("dlq", "purge", "default", "--yes", "--servers", url, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"queue": "default", "purged": 0}


@pytest.mark.parametrize(
    "command", [["check"], ["queues", "--json"], ["dlq", "list"], ["--help"], ["--version"]]
)
def test_a_closed_pipe_ends_quietly(nats_server, config: Path, command: list[str]) -> None:
    """`naqd dlq list | head -1`: the reader is gone before naqd writes."""
    assert naqd("init", "--config", str(config)).returncode == 0
    proc = subprocess.Popen(
        [naqd_executable(), *command, "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=ENV,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the interpreter has even started: every write fails
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert err == ""
