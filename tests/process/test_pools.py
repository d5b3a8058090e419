"""Pools with the real daemon: one worker process serving three queues, each with its
own slots and pause, the heartbeat and `naqd workers` / `naqd status` saying which
queues the process serves, the pool's recycle counting every queue's jobs, and
`naqd worker a b c --processes 2`."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

from naqd import Client, SyncClient
from naqd.models import Config, NatsConfig, QueueConfig
from naqd.protocol.resources import ensure_resources
from tests.conftest import REPO, naqd_executable
from tests.natsserver import free_port, wait_until
from tests.process.test_observe import scrape, value
from tests.process.test_worker_command import WorkerDaemon


def naqd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [naqd_executable(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def worker_records(url: str) -> list[dict]:
    out = naqd("workers", "--servers", url, "--json")
    assert out.returncode == 0, out.stderr
    return [r for r in json.loads(out.stdout) if r["role"] == "worker"]


def test_one_process_serves_three_queues_each_with_its_own_slots_and_pause(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues:
          default: {concurrency: 1}
          reports: {concurrency: 2}
          emails: {concurrency: 3}
        pools:
          small: {queues: [default, reports, emails], max_jobs_per_process: 8, max_jobs_jitter: 0}
        scheduler: {enabled: false}
        heartbeat: {interval: 1s}
        """,
    )
    daemon.wait_for_log("(pool small)")
    assert daemon.log.count("ready: queue") == 1  # one process for the three queues
    url = nats_server.url
    wait_until(lambda: len(worker_records(url)) == 1, 20, what="the pool's heartbeat")
    (rec,) = worker_records(url)
    assert rec["pool"] == "small"
    assert rec["queues"] == ["default", "reports", "emails"]
    assert rec["slots"] == {"default": 1, "reports": 2, "emails": 3}
    assert rec["concurrency"] == 6
    table = naqd("workers", "--servers", url).stdout
    assert "small" in table and "default,reports,emails" in table
    status = naqd("status", "--config", str(daemon.config_path)).stdout
    assert "default,reports,emails" in status
    samples = scrape(daemon.metrics_url)
    labels = {"role": "worker", "queue": "default,reports,emails", "index": "0", "pool": "small"}
    assert value(samples, "naqd_child_healthy", **labels) == 1
    assert value(samples, "naqd_child_resident_memory_bytes", **labels)

    blocked = tmp_path / "blocked"
    blocked.mkdir()
    with SyncClient(url) as client:
        # `default` has one slot: one blocking job fills it, and the other queues
        # still run in the same process (their slots are their own).
        held = client.enqueue("tests.tasks:block_until_released", str(blocked), queue="default")
        wait_until(lambda: (blocked / "started").exists(), 20, what="the blocking job")
        second = client.enqueue("tests.tasks:add", 1, 1, queue="default")
        assert client.enqueue("tests.tasks:add", 2, 2, queue="reports").result(timeout=20) == 4
        assert client.enqueue("tests.tasks:add", 3, 3, queue="emails").result(timeout=20) == 6
        assert client.record(second.id) is None  # waits for default's one slot
        # A paused queue takes nothing; its neighbours in the process go on.
        client.pause_queue("emails")
        paused = client.enqueue("tests.tasks:add", 4, 4, queue="emails")
        assert client.enqueue("tests.tasks:add", 5, 5, queue="reports").result(timeout=20) == 10
        assert client.record(paused.id) is None
        (blocked / "release").touch()
        assert held.result(timeout=20) == "released"
        assert second.result(timeout=20) == 2
        client.resume_queue("emails")
        assert paused.result(timeout=30) == 8
        # A cancel request reaches a job of any queue of the process (one shared watch).
        waiting = tmp_path / "waiting"
        waiting.mkdir()
        forever = client.enqueue("tests.tasks:async_wait_forever", str(waiting), queue="emails")
        wait_until(lambda: (waiting / "started").exists(), 20, what="the job to start")
        assert client.cancel(forever.id)
        assert client.wait(forever.id, timeout=20).status == "cancelled"
        # 7 jobs so far; the 8th, of any queue, recycles the process (the pool's limit).
        assert client.enqueue("tests.tasks:add", 6, 6, queue="reports").result(timeout=20) == 12
        daemon.wait_for_log("recycled; starting a new one", timeout=30)
        daemon.wait_for_log("(pool small)", count=2, timeout=30)
        assert client.enqueue("tests.tasks:add", 7, 7, queue="emails").result(timeout=20) == 14
    assert "ran 8 jobs (max_jobs_per_process)" in daemon.log
    assert "died with" not in daemon.log


def test_naqd_worker_with_several_queues_runs_processes_that_serve_them_all(
    nats_server, tmp_path: Path
) -> None:
    config = tmp_path / "metrics.yaml"  # never the default metrics port: tests run in parallel
    config.write_text(f'metrics: {{listen: "127.0.0.1:{free_port()}"}}\n')
    args = ["a", "b", "c", "--processes", "2", "--concurrency", "2", "--import", "tests.tasks"]
    args += ["--servers", nats_server.url, "--config", str(config)]
    daemon = WorkerDaemon(args, tmp_path, {}).start()
    try:
        daemon.wait_for_log("(pool cli)", count=2)
        assert "started pool[cli]#0" in daemon.log and "started pool[cli]#1" in daemon.log
        wait_until(lambda: len(worker_records(nats_server.url)) == 2, 20, what="heartbeats")
        for rec in worker_records(nats_server.url):
            assert rec["pool"] == "cli" and rec["queues"] == ["a", "b", "c"]
            assert rec["slots"] == {"a": 2, "b": 2, "c": 2}
        with SyncClient(nats_server.url) as client:
            jobs = [client.enqueue("tests.tasks:add", i, i, queue=q) for i, q in enumerate("abc")]
            assert [job.result(timeout=20) for job in jobs] == [0, 2, 4]
    finally:
        daemon.stop()


def test_a_reload_of_one_pooled_queue_replaces_the_pools_process_only(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        scheduler: {enabled: false}
        queues:
          a: {concurrency: 2}
          b: {concurrency: 2}
          solo: {concurrency: 1}
        pools:
          small: {queues: [a, b]}
        heartbeat: {interval: 1s}
        shutdown: {grace_period: 20s}
        """,
        ready_workers=2,
    )
    url = nats_server.url
    wait_until(lambda: len(worker_records(url)) == 2, 20, what="heartbeats")
    pids = {r["pool"] or r["queues"][0]: r["pid"] for r in worker_records(url)}
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    with SyncClient(url) as client:
        # A job of the pool's other queue is running when the reload comes.
        held = client.enqueue("tests.tasks:block_until_released", str(blocked), queue="b")
        wait_until(lambda: (blocked / "started").exists(), 20, what="the blocking job")
        text = daemon.config_path.read_text()
        daemon.config_path.write_text(text.replace("a: {concurrency: 2}", "a: {concurrency: 3}"))
        daemon.send(signal.SIGHUP)
        daemon.wait_for_log("reload: replacing pool[small]#0", timeout=30)
        daemon.wait_for_log("queue a concurrency 3", timeout=30)
        # The new process serves both queues while the old one finishes the held job.
        assert client.enqueue("tests.tasks:add", 1, 2, queue="a").result(timeout=20) == 3
        (blocked / "release").touch()
        assert held.result(timeout=30) == "released"  # finished in the old process
        daemon.wait_for_log("reload complete", timeout=30)
    log = daemon.log
    assert "reload: replacing worker[solo]" not in log  # not in the pool: untouched

    def served() -> dict[str, int]:
        return {r["pool"] or r["queues"][0]: r["pid"] for r in worker_records(url)}

    wait_until(lambda: served().get("small") not in (None, pids["small"]), 20, what="new pool")
    assert served()["solo"] == pids["solo"]
    assert (blocked / "started").read_text().count("\n") == 1  # it ran once


def test_a_burst_of_a_pool_runs_every_queue_then_exits(nats_server, tmp_path: Path) -> None:
    config = tmp_path / "metrics.yaml"
    config.write_text(f'metrics: {{listen: "127.0.0.1:{free_port()}"}}\n')
    queues = {q: QueueConfig(name=q) for q in "ab"}
    cfg = Config(nats=NatsConfig(servers=(nats_server.url,)), queues=queues)

    async def prepare() -> None:  # naqd's streams, as any earlier daemon run leaves them
        async with Client(nats_server.url) as client:
            await ensure_resources(client.nc.jetstream(), cfg)

    asyncio.run(prepare())
    with SyncClient(nats_server.url) as client:
        jobs = [client.enqueue("tests.tasks:add", i, 1, queue=q) for i, q in enumerate("ab" * 5)]
    args = ["a", "b", "--burst", "--import", "tests.tasks", "--servers", nats_server.url]
    daemon = WorkerDaemon([*args, "--config", str(config)], tmp_path, {}).start()
    try:
        assert daemon.wait(60) == 0
    finally:
        daemon.stop()
    assert "started pool[cli]#0" in daemon.log
    with SyncClient(nats_server.url) as client:
        assert [client.result(job.id, timeout=5) for job in jobs] == [i + 1 for i in range(10)]
