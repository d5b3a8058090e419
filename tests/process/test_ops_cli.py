"""`naqd status / workers / queues / purge / job` against a real server and a live
daemon, and what the supervisor's HTTP endpoint says at `/`."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from naqd import SyncClient
from tests.conftest import REPO, naqd_executable
from tests.natsserver import wait_until

CONFIG = """
tasks: {imports: [tests.tasks]}
queues:
  default: {concurrency: 2, processes: 2, retries: 0}
  idle: {concurrency: 1, processes: 1, retries: 0}  # its dead letter lands at once
schedules:
  nightly: {cron: "0 3 * * *", task: "tests.tasks:add", args: [1, 2]}
heartbeat: {interval: 1s}
"""


def naqd(*args: str, check_json: bool = False) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [naqd_executable(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    if check_json:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def live(daemon_factory, nats_server):
    daemon = daemon_factory(CONFIG, ready_workers=3)
    wait_until(
        lambda: (
            json.loads(naqd("workers", "--servers", nats_server.url, "--json").stdout or "[]")
            and len(json.loads(naqd("workers", "--servers", nats_server.url, "--json").stdout)) == 4
        ),
        20,
        what="4 heartbeats (3 workers and the scheduler)",
    )
    return daemon, nats_server.url


def test_workers_lists_every_process(live) -> None:
    _, url = live
    records = json.loads(naqd("workers", "--servers", url, "--json").stdout)
    workers = [r for r in records if r["role"] == "worker"]
    assert sorted(r["queues"][0] for r in workers) == ["default", "default", "idle"]
    assert [r["role"] for r in records if r["role"] != "worker"] == ["scheduler"]
    table = naqd("workers", "--servers", url)
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:5] == ["HOST", "PID", "ROLE", "POOL", "QUEUES"]
    assert len(lines) == 5  # header, three workers, the scheduler
    for r in records:
        assert str(r["pid"]) in table.stdout


def test_status_shows_queues_workers_and_schedules(live, tmp_path: Path) -> None:
    daemon, url = live
    with SyncClient(url) as client:
        client.enqueue("tests.tasks:add", 1, 1).result(timeout=20)
    out = naqd("status", "--config", str(daemon.config_path))
    assert out.returncode == 0, out.stderr
    assert "JetStream" in out.stdout and "API level" in out.stdout
    assert "default" in out.stdout and "idle" in out.stdout
    assert "nightly" in out.stdout and "03:00:00 UTC" in out.stdout
    # The scheduler child wins the lease and says so in its heartbeat.
    host = socket.gethostname()
    wait_until(
        lambda: (
            f"Scheduler leader: {host}"
            in naqd("status", "--config", str(daemon.config_path)).stdout
        ),
        30,
        what="the leader in naqd status",
    )
    data = json.loads(naqd("status", "--config", str(daemon.config_path), "--json").stdout)
    assert [q["queue"] for q in data["queues"]] == ["default", "idle"]
    default = data["queues"][0]
    assert default["processes"] == 2 and default["concurrency"] == 4
    assert data["hosts"][0]["workers"] == 3
    assert data["schedules"][0]["schedule"] == "nightly"


def test_queues_purge_and_job(live, tmp_path: Path) -> None:
    _, url = live
    with SyncClient(url, check_queues=False) as client:
        # A queue nobody serves keeps its jobs: something to look at and to purge.
        waiting = [client.enqueue("tests.tasks:add", i, i, queue="nobody") for i in range(3)]
        done = client.enqueue("tests.tasks:add", 2, 3)
        assert done.result(timeout=20) == 5
        failed = client.enqueue("tests.tasks:fail", "nope")
        wait_until(lambda: client.status(failed.id) == "failed", 20)

    rows = json.loads(naqd("queues", "--servers", url, "--json").stdout)
    assert {r["queue"]: r["pending"] for r in rows}["default"] == 0
    nobody = next(r for r in rows if r["queue"] == "nobody")  # shown, though unserved
    assert nobody["pending"] == 3 and nobody["unserved"] is True

    queued = naqd("job", waiting[1].id, "--servers", url, "--json")
    assert queued.returncode == 0
    data = json.loads(queued.stdout)
    assert data["status"] == "queued"
    assert data["queued"]["envelope"]["args"] == [1, 1]
    assert data["queued"]["envelope"]["queue"] == "nobody"

    ok = naqd("job", done.id, "--servers", url)
    assert ok.returncode == 0 and "succeeded" in ok.stdout and "result    5" in ok.stdout
    bad = naqd("job", failed.id, "--servers", url)
    assert bad.returncode == 1 and "ValueError: nope" in bad.stdout
    missing = naqd("job", "no-such-job", "--servers", url)
    assert missing.returncode == 3 and "not found" in missing.stderr

    refused = naqd("purge", "nobody", "--servers", url)  # stdin is not a terminal
    assert refused.returncode == 64
    purged = naqd("purge", "nobody", "--yes", "--servers", url)
    assert purged.returncode == 0 and purged.stdout.strip() == "purged 3 job(s) from queue nobody"
    empty = json.loads(naqd("purge", "idle", "--yes", "--servers", url, "--json").stdout)
    assert empty == {"queue": "idle", "purged": 0}
    # Purged and unserved: nothing left that says the queue exists.
    assert naqd("purge", "never-heard-of", "--yes", "--servers", url).returncode == 3
    assert naqd("job", waiting[1].id, "--servers", url).returncode == 3


def make_dead_letters(url: str) -> None:
    """Two dead letters in `default` and one in `idle`; ids with dots, as cron-fired jobs
    have (`cron.<schedule>.<tick>`)."""
    with SyncClient(url) as client:
        jobs = [
            client.enqueue("tests.tasks:fail", "x", job_id=f"dead.{i}.x", queue=queue)
            for i, queue in enumerate(("default", "default", "idle"))
        ]
        for job in jobs:
            wait_until(lambda job=job: client.status(job.id) == "failed", 20)


def test_dead_letters_are_counted_per_queue(live) -> None:
    _, url = live
    make_dead_letters(url)
    rows = json.loads(naqd("queues", "--servers", url, "--json", check_json=True).stdout)
    assert {r["queue"]: r["dead"] for r in rows} == {"default": 2, "idle": 1}
    table = naqd("queues", "--servers", url).stdout.splitlines()
    header = table[0].split()
    by_queue = {line.split()[0]: line.split() for line in table[1:]}
    assert by_queue["default"][header.index("DEAD") - 1] == "2"  # "IN FLIGHT" is two words
    data = json.loads(naqd("status", "--servers", url, "--json", check_json=True).stdout)
    assert {q["queue"]: q["dead"] for q in data["queues"]} == {"default": 2, "idle": 1}
    assert data["dead_letters"]["counts"] == {"default": 2, "idle": 1}
    recent = data["dead_letters"]["recent"]
    assert sorted((d["queue"], d["id"]) for d in recent) == [
        ("default", "dead.0.x"),
        ("default", "dead.1.x"),
        ("idle", "dead.2.x"),
    ]


def test_unreachable_nats_exits_69() -> None:
    out = naqd("status", "--servers", "nats://127.0.0.1:1")
    assert out.returncode == 69 and "cannot reach NATS" in out.stderr
    assert "Traceback" not in out.stderr


# -- the supervisor's HTTP endpoint -------------------------------------------------------


def test_the_old_status_page_points_to_the_console(live) -> None:
    """The read-only status page became the web console's overview (tests/dashboard/):
    the supervisor keeps /metrics and /healthz and says where the console is."""
    daemon, _ = live
    with urllib.request.urlopen(f"{daemon.metrics_url}/", timeout=5) as page:
        text = page.read().decode()
        assert page.headers["Content-Type"].startswith("text/plain")
    assert "/metrics" in text and "naqd dashboard" in text
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(f"{daemon.metrics_url}/api/status", timeout=5)
    assert gone.value.code == 404
    gone.value.close()
