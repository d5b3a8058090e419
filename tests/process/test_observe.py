"""Metrics, health, heartbeats and sd_notify of the real daemon, with real jobs, real
signals and a real notify socket."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from naqd import SyncClient
from tests.natsserver import wait_until

FAST = """
tasks: {imports: [tests.tasks]}
scheduler: {enabled: false}
queues: {default: {concurrency: 4, processes: 2, retries: 1}}
heartbeat: {interval: 1s}
shutdown: {grace_period: 5s}
"""


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def healthz(base: str) -> int:
    try:
        return urllib.request.urlopen(f"{base}/healthz", timeout=5).status
    except urllib.error.HTTPError as exc:
        return exc.code


def healthz_body(base: str) -> dict:
    """/healthz's JSON, also when it answers 503."""
    try:
        return json.loads(urllib.request.urlopen(f"{base}/healthz", timeout=5).read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def child_pids(daemon) -> list[int]:
    return [c["pid"] for c in healthz_body(daemon.metrics_url)["children"]]


def test_metrics_follow_real_jobs(daemon_factory, nats_server) -> None:
    daemon = daemon_factory(FAST, ready_workers=2)
    base = daemon.metrics_url
    wait_until(lambda: healthz(base) == 200, 20, what="healthy")
    before = scrape(base)
    assert value(before, "naqd_worker_processes") == 2
    assert value(before, "naqd_nats_connected") == 1
    assert value(before, "naqd_config_last_reload_successful") == 1
    assert value(before, "naqd_child_restarts_total", role="worker") == 0
    assert value(before, "naqd_jobs_started_total", queue="default", task="tests.tasks:add") is None
    assert any(name == "naqd_build_info" for name, _ in before)

    job = dict(queue="default", task="tests.tasks:add")
    failing = dict(queue="default", task="tests.tasks:fail")
    with SyncClient(nats_server.url) as client:
        for i in range(5):
            assert client.enqueue("tests.tasks:add", i, 1).result(timeout=20) == i + 1
        bad = client.enqueue("tests.tasks:fail", "boom")
        wait_until(lambda: client.status(bad.id) == "failed", 30, what="job failed for good")

    # Workers write their counts at most a second late (observe/metrics.py FLUSH_EVERY).
    wait_until(
        lambda: (
            value(s := scrape(base), "naqd_jobs_failed_total", **failing) == 1
            and value(s, "naqd_jobs_succeeded_total", **job) == 5
        ),
        10,
        what="counts flushed",
    )
    after = scrape(base)
    assert value(after, "naqd_jobs_started_total", **job) == 5
    assert value(after, "naqd_jobs_succeeded_total", **job) == 5
    assert value(after, "naqd_job_duration_seconds_count", **job) == 5
    assert value(after, "naqd_job_queue_wait_seconds_count", **job) == 5
    assert 0 < value(after, "naqd_job_duration_seconds_sum", **job) < 10
    # retries: 1 -> two attempts: one retried, one failed for good.
    assert value(after, "naqd_jobs_started_total", **failing) == 2
    assert value(after, "naqd_jobs_retried_total", **failing) == 1
    assert value(after, "naqd_jobs_failed_total", **failing) == 1
    assert value(after, "naqd_jobs_running", queue="default") == 0
    # Queue depth comes from consumer info, fetched by worker 0 every interval.
    wait_until(
        lambda: (
            value(s := scrape(base), "naqd_queue_pending", queue="default") == 0
            and value(s, "naqd_queue_in_flight", queue="default") == 0
        ),
        10,
        what="queue depth back to 0",
    )

    # A killed worker is a restart and its replacement's counts add to the totals.
    victim = child_pids(daemon)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: value(scrape(base), "naqd_child_restarts_total", role="worker") == 1,
        20,
        what="restart counted",
    )
    wait_until(lambda: healthz(base) == 200, 30, what="healthy again")
    with SyncClient(nats_server.url) as client:
        for i in range(4):
            client.enqueue("tests.tasks:add", i, 1).result(timeout=20)
    wait_until(
        lambda: value(scrape(base), "naqd_jobs_succeeded_total", **job) == 9,
        10,
        what="the replacement's counts added",
    )


def test_queue_depth_shows_waiting_jobs(daemon_factory, nats_server, tmp_path: Path) -> None:
    # prefetch: 0, or the worker would hold the three waiting jobs (in flight, not pending).
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {concurrency: 1, processes: 1, prefetch: 0}}
        heartbeat: {interval: 1s}
        """,
        ready_workers=1,
    )
    with SyncClient(nats_server.url) as client:
        jobs = [client.enqueue("tests.tasks:overlap", str(tmp_path)) for _ in range(4)]

        def depth() -> bool:
            s = scrape(daemon.metrics_url)
            return (
                value(s, "naqd_queue_pending", queue="default") == 3
                and value(s, "naqd_queue_in_flight", queue="default") == 1
                and value(s, "naqd_jobs_running", queue="default") == 1
            )

        wait_until(depth, 20, what="3 pending, 1 in flight, 1 running")
        (tmp_path / "release").touch()
        for j in jobs:
            j.result(timeout=30)


def test_healthz_fails_while_a_worker_is_stopped(daemon_factory) -> None:
    daemon = daemon_factory(FAST, ready_workers=2)
    base = daemon.metrics_url
    wait_until(lambda: healthz(base) == 200, 20, what="healthy")
    victim = child_pids(daemon)[1]
    os.kill(victim, signal.SIGSTOP)
    try:
        wait_until(lambda: healthz(base) == 503, 20, what="unhealthy while stopped")
        states = {c["pid"]: c["state"] for c in healthz_body(base)["children"]}
        assert states[victim] == "stale"
        assert (
            value(
                scrape(base),
                "naqd_child_healthy",
                role="worker",
                queue="default",
                index="1",
                pool="",
            )
            == 0
        )
    finally:
        os.kill(victim, signal.SIGCONT)
    wait_until(lambda: healthz(base) == 200, 20, what="healthy after SIGCONT")


# -- heartbeats in KV -------------------------------------------------------------------


def worker_records(url: str) -> list[dict]:
    from naqd.observe.status import workers

    async def go() -> list[dict]:
        import nats

        nc = await nats.connect(url)
        try:
            return await workers(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(go())


def test_kv_heartbeats_expire_after_sigkill_and_vanish_on_clean_stop(
    daemon_factory, nats_server
) -> None:
    daemon = daemon_factory(FAST, ready_workers=2)
    url = nats_server.url
    records = wait_until(lambda: len(worker_records(url)) == 2 and worker_records(url), 20)
    rec = records[0]
    assert rec["role"] == "worker" and rec["queues"] == ["default"]
    assert rec["concurrency"] == 4 and rec["host"] == socket.gethostname()
    assert set(rec) >= {"pid", "running", "done", "failed", "started_at", "version"}

    victim = records[0]["pid"]
    os.kill(victim, signal.SIGKILL)
    # Gone after the bucket TTL (3 intervals = 3 s); the replacement shows up.
    wait_until(
        lambda: victim not in [r["pid"] for r in worker_records(url)], 15, what="record expired"
    )
    wait_until(
        lambda: sorted(r["pid"] for r in worker_records(url)) == sorted(child_pids(daemon)),
        20,
        what="records of exactly the live children",
    )

    daemon.send(signal.SIGTERM)
    assert daemon.wait(30) == 0
    # Deleted at once, not after the TTL: check before a single interval has passed.
    assert worker_records(url) == [], daemon.log[-6000:]


# -- sd_notify ------------------------------------------------------------------------------


class NotifySocket:
    """A datagram socket like systemd's, noting each message with its sender's pid."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.2)
        self.path = str(path)
        self.messages: list[tuple[int, list[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        creds = struct.calcsize("3i")
        while not self._stop.is_set():
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(creds))
            except TimeoutError:
                continue
            pid = -1
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[:creds])[0]
            self.messages.append((pid, data.decode().split("\n")))

    def count(self, line: str) -> int:
        return sum(1 for _, lines in list(self.messages) if line in lines)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def test_notify_protocol_ready_watchdog_reload_stopping(daemon_factory, tmp_path: Path) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    env = {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"}  # ping every 0.5 s
    try:
        daemon = daemon_factory(FAST, env=env)
        wait_until(lambda: notify.count("READY=1") == 1, 30, what="READY=1")
        assert "ready: queue" in daemon.log  # not before the workers serve
        assert daemon.log.count("ready: queue") == 2
        wait_until(lambda: notify.count("WATCHDOG=1") >= 2, 10, what="watchdog pings")

        # A wedged child starves the watchdog; it resumes once the child runs again.
        victim = child_pids(daemon)[0]
        os.kill(victim, signal.SIGSTOP)
        try:
            wait_until(lambda: healthz(daemon.metrics_url) == 503, 20, what="stale child")
            pings = notify.count("WATCHDOG=1")
            wait_until(lambda: healthz(daemon.metrics_url) == 503, 1.5)
            assert notify.count("WATCHDOG=1") <= pings + 1
            daemon.wait_for_log(f"(pid {victim}) is stale: no beat for")
        finally:
            os.kill(victim, signal.SIGCONT)
        wait_until(lambda: notify.count("WATCHDOG=1") >= pings + 3, 20, what="pings resume")
        daemon.wait_for_log(f"(pid {victim}) beats again")

        daemon.send(signal.SIGHUP)
        wait_until(lambda: notify.count("READY=1") == 2, 20, what="READY=1 after reload")
        reload_msgs = [m for _, m in notify.messages if "RELOADING=1" in m]
        assert len(reload_msgs) == 1
        assert any(line.startswith("MONOTONIC_USEC=") for line in reload_msgs[0])

        daemon.send(signal.SIGTERM)
        assert daemon.wait(30) == 0
        assert notify.count("STOPPING=1") == 1
        statuses = [line for _, m in notify.messages for line in m if line.startswith("STATUS=")]
        assert any("2/2 children healthy" in s for s in statuses)
        # Only the supervisor talks to systemd, never a child.
        senders = {pid for pid, _ in notify.messages}
        assert senders == {daemon.proc.pid}
    finally:
        notify.close()


def test_a_rejected_reload_is_reported_and_the_daemon_runs_on(daemon_factory) -> None:
    daemon = daemon_factory(FAST, ready_workers=2)
    base = daemon.metrics_url
    wait_until(lambda: healthz(base) == 200, 20, what="healthy")
    daemon.config_path.write_text(daemon.config_path.read_text() + "queues: {oops\n")
    daemon.send(signal.SIGHUP)
    wait_until(
        lambda: value(scrape(base), "naqd_config_last_reload_successful") == 0,
        20,
        what="reload marked failed",
    )
    assert healthz(base) == 200 and daemon.proc.poll() is None
    assert "reload failed: keeping the running configuration" in daemon.log


def test_a_taken_metrics_port_does_not_stop_the_jobs(daemon_factory, nats_server) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = daemon_factory(
            FAST + f'metrics: {{listen: "127.0.0.1:{port}"}}\n', ready_workers=2
        )
        daemon.wait_for_log("cannot serve metrics on")
        with SyncClient(nats_server.url) as client:
            assert client.enqueue("tests.tasks:add", 2, 2).result(timeout=20) == 4


def test_queue_gauges_dead_letters_lag_pause_and_unknown_tasks(daemon_factory, nats_server) -> None:
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        scheduler: {enabled: false}
        queues: {default: {concurrency: 2, processes: 1, retries: 0}}
        heartbeat: {interval: 1s}
        """,
        ready_workers=1,
    )
    base = daemon.metrics_url
    with SyncClient(nats_server.url) as client:
        # Misspelled names in an allowed module: dead letters, and one label between them.
        dead = [client.enqueue(f"tests.tasks:no_such_{i}") for i in range(3)]
        dead.append(client.enqueue("tests.tasks:fail", "boom"))
        for job in dead:
            wait_until(lambda job=job: client.status(job.id) == "failed", 20, what="dead")
        # The worker writes its counts to the metric files at most once a second
        # (observe/metrics.py), so the dead-letter gauge can lead the started counter.
        wait_until(
            lambda: (
                value(s := scrape(base), "naqd_dead_letters", queue="default") == 4
                and value(s, "naqd_jobs_started_total", queue="default", task="<unknown>") == 3
            ),
            10,
            what="4 dead letters counted, 3 unknown-task starts",
        )
        s = scrape(base)
        tasks = {dict(labels).get("task") for _, labels in s} - {None}
        assert tasks == {"<unknown>", "tests.tasks:fail"}, tasks
        assert value(s, "naqd_jobs_started_total", queue="default", task="<unknown>") == 3
        assert value(s, "naqd_queue_paused", queue="default") == 0
        assert value(s, "naqd_queue_lag_seconds", queue="default") == 0

        client.pause_queue("default")
        daemon.wait_for_log("queue default is paused")
        waiting = client.enqueue("tests.tasks:add", 1, 2)
        wait_until(
            lambda: (
                value(s := scrape(base), "naqd_queue_paused", queue="default") == 1
                and value(s, "naqd_queue_pending", queue="default") == 1
                and value(s, "naqd_queue_lag_seconds", queue="default") >= 1.0
            ),
            20,
            what="paused, one job waiting for more than a second",
        )
        client.resume_queue("default")
        assert waiting.result(timeout=20) == 3
        daemon.wait_for_log("queue default resumed")
        wait_until(
            lambda: (
                value(s := scrape(base), "naqd_queue_paused", queue="default") == 0
                and value(s, "naqd_queue_lag_seconds", queue="default") == 0
            ),
            10,
            what="resumed, nothing waiting",
        )


@pytest.mark.skipif(shutil.which("promtool") is None, reason="Prometheus' promtool not installed")
def test_a_real_scrape_passes_promtool(daemon_factory, nats_server) -> None:
    daemon = daemon_factory(FAST, ready_workers=2)
    with SyncClient(nats_server.url) as client:
        assert client.enqueue("tests.tasks:add", 1, 2).result(timeout=20) == 3
        bad = client.enqueue("tests.tasks:no_such_task")
        wait_until(lambda: client.status(bad.id) == "failed", 20, what="dead letter")
    wait_until(
        lambda: value(scrape(daemon.metrics_url), "naqd_dead_letters", queue="default") == 1,
        10,
        what="the dead-letter gauge",
    )
    text = urllib.request.urlopen(f"{daemon.metrics_url}/metrics", timeout=5).read()
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout + check.stderr == b""  # no lint warnings either
