"""Schedules across real `naqd` daemons on one nats-server: exactly one job per tick
with two schedulers, leader failover after kill -9, SIGHUP reload."""

from __future__ import annotations

import asyncio
import calendar
import itertools
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import nats

from naqd import SyncClient
from naqd.protocol.names import RESULTS_BUCKET
from tests.conftest import REPO, naqd_executable
from tests.natsserver import wait_until

LEASE, RENEW = 2.0, 0.5
SCHEDULED = f"""
tasks: {{imports: [tests.tasks]}}
queues: {{default: {{concurrency: 4, ack_wait: 2s, retries: 1}}}}
scheduler: {{leader_election: {{lease: {LEASE:g}s, renew_every: {RENEW:g}s}}}}
shutdown: {{grace_period: 5s}}
logging: {{level: debug}}  # a line per fire is DEBUG; INFO has one line per wave
"""
FIRED = re.compile(r"fired (cron\.\S+) for tick")


def tick_schedule(tmp_path: Path, name: str = "tick") -> str:
    return f"""
schedules:
  {name}: {{every: 1s, task: "tests.tasks:count_run", args: ["{tmp_path}"]}}
"""


def fired(*daemons) -> list[str]:
    return [job for d in daemons for job in FIRED.findall(d.log)]


def runs(tmp_path: Path) -> int:
    path = tmp_path / "runs"
    return len(path.read_text().split()) if path.exists() else 0


def result_keys(url: str, prefix: str) -> list[str]:
    async def go() -> list[str]:
        nc = await nats.connect(url)
        try:
            kv = await nc.jetstream().key_value(RESULTS_BUCKET)
            return sorted(k for k in await kv.keys() if k.startswith(prefix))
        finally:
            await nc.close()

    return asyncio.run(go())


def stamps_are_consecutive_seconds(job_ids: list[str]) -> bool:
    secs = [calendar.timegm(time.strptime(j.rsplit(".", 1)[1], "%Y%m%dT%H%M%SZ")) for j in job_ids]
    return all(b - a == 1 for a, b in itertools.pairwise(secs))


def leader_of(*daemons):
    return next(d for d in daemons if "became scheduler leader" in d.log)


def test_two_daemons_fire_one_job_per_tick(daemon_factory, nats_server, tmp_path: Path) -> None:
    body = SCHEDULED + tick_schedule(tmp_path)
    a = daemon_factory(body, ready_workers=1, name="a")
    b = daemon_factory(body, ready_workers=1, name="b")
    for d in (a, b):
        d.wait_for_log("scheduler ready: 1 schedule(s)")
    # Ten one-second ticks with two schedulers competing for every one of them.
    wait_until(lambda: len(fired(a, b)) >= 10, 40, what="ten fires")
    a.stop()
    b.stop()
    jobs = fired(a, b)
    assert len(jobs) >= 10
    assert len(set(jobs)) == len(jobs), "a tick was fired by both schedulers"
    if (a.log + b.log).count("became scheduler leader") == 1:
        # One leader throughout (no stall on a busy machine forced a hand-over).
        assert stamps_are_consecutive_seconds(sorted(jobs)), "a tick was missed"
    # Each fired tick is one stored job that ran once.
    keys = result_keys(nats_server.url, "cron.tick.")
    assert keys == sorted(jobs)
    assert runs(tmp_path) == len(jobs)


def test_kill_9_of_the_leader_hands_over_without_double_fires(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    body = SCHEDULED + tick_schedule(tmp_path)
    a = daemon_factory(body, ready_workers=1, name="a")
    b = daemon_factory(body, ready_workers=1, name="b")
    wait_until(lambda: len(fired(a, b)) >= 3, 20, what="three fires")
    leader = leader_of(a, b)
    survivor = b if leader is a else a
    # The whole naqd dies at once, like a crashed host: supervisor and children.
    children = [int(p) for p in re.findall(r"started \S+ \(pid (\d+)\)", leader.log)]
    for pid in [leader.proc.pid, *children]:
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    leader.proc.wait(10)
    last_before = sorted(fired(leader))[-1]
    survivor.wait_for_log("became scheduler leader", timeout=LEASE + RENEW + 15)
    took_over = time.monotonic() - killed_at
    wait_until(lambda: len(fired(survivor)) >= 4, 20, what="fires after takeover")
    survivor.stop()

    before, after = fired(leader), fired(survivor)
    assert not set(before) & set(after), "a tick was fired twice"
    # The new leader continued after the last fired tick: one catch-up, then every tick.
    assert min(after) > last_before
    assert stamps_are_consecutive_seconds(sorted(after))
    # The lease (2 s, +0.25 s expiry lag) plus one campaign interval, with slack for a
    # busy 2-core test machine.
    assert took_over < LEASE + RENEW + 3.0, took_over
    keys = result_keys(nats_server.url, "cron.tick.")
    assert set(after) <= set(keys)


def test_sighup_adds_a_schedule_without_restarting_workers(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    daemon = daemon_factory(SCHEDULED, ready_workers=1)
    daemon.wait_for_log("scheduler ready: 0 schedule(s)")
    workers_before = re.findall(r"started worker\S* \(pid (\d+)\)", daemon.log)
    daemon.config_path.write_text(daemon.config_path.read_text() + tick_schedule(tmp_path, "added"))
    daemon.send(signal.SIGHUP)
    daemon.wait_for_log("scheduler ready: 1 schedule(s)")
    wait_until(lambda: runs(tmp_path) >= 2, 20, what="the added schedule to run")
    assert all(j.startswith("cron.added.") for j in fired(daemon))
    assert re.findall(r"started worker\S* \(pid (\d+)\)", daemon.log) == workers_before
    assert daemon.log.count("started scheduler") == 2  # only the scheduler restarted
    assert "died with" not in daemon.log
    # Any host sees the added schedule without the file: the leader published it.
    listed = naqd_cli("schedules", "--json", "--servers", nats_server.url)
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)["schedules"]}
    assert rows["added"]["origin"] == "yaml" and rows["added"]["last_job"]


def test_broken_yaml_on_sighup_keeps_the_old_config(daemon_factory, tmp_path: Path) -> None:
    daemon = daemon_factory(SCHEDULED + tick_schedule(tmp_path), ready_workers=1)
    wait_until(lambda: fired(daemon), 20, what="first fire")
    wait_until(
        lambda: re.search(r"INFO .* fired 1 of 1 due tick\(s\) of tick \(", daemon.log),
        10,
        what="the wave's summary at INFO",
    )
    good = daemon.config_path.read_text()
    daemon.config_path.write_text(good.replace("every: 1s", "every: often"))
    daemon.send(signal.SIGHUP)
    daemon.wait_for_log("reload failed: keeping the running configuration")
    assert f"{daemon.config_path}:" in daemon.log and "schedules.tick.every" in daemon.log
    count = len(fired(daemon))
    wait_until(lambda: len(fired(daemon)) >= count + 2, 10, what="fires to go on")
    assert daemon.proc.poll() is None
    assert daemon.log.count("started scheduler") == 1
    assert daemon.log.count("started worker") == 1


def naqd_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [naqd_executable(), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_schedules_cli_lists_pauses_resumes_and_triggers(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    nightly = f"""
  nightly: {{cron: "30 2 * * *", timezone: Europe/Berlin, task: "tests.tasks:count_run",
            args: ["{tmp_path}"]}}
"""
    daemon = daemon_factory(SCHEDULED + tick_schedule(tmp_path) + nightly, ready_workers=1)
    wait_until(lambda: fired(daemon), 20, what="first fire")
    config = str(daemon.config_path)

    listing = naqd_cli("schedules", "--config", config, "--json")
    assert listing.returncode == 0, listing.stderr
    data = json.loads(listing.stdout)
    assert data["leader"]["pid"] > 0
    rows = {r["name"]: r for r in data["schedules"]}
    assert rows["tick"]["last_job"].startswith("cron.tick.")
    assert rows["nightly"]["next_local"].endswith(("CET", "CEST"))
    assert rows["nightly"]["last_tick"] is None

    assert naqd_cli("schedules", "pause", "tick", "--config", config).returncode == 0
    daemon.wait_for_log("tick: paused, not firing")
    paused_runs = len(fired(daemon))
    daemon.wait_for_log("tick: paused, not firing", count=3)
    assert len(fired(daemon)) == paused_runs
    assert naqd_cli("schedules", "resume", "tick", "--config", config).returncode == 0
    wait_until(lambda: len(fired(daemon)) > paused_runs, 10, what="fires after resume")

    trig = naqd_cli("schedules", "trigger", "nightly", "--config", config)
    assert trig.returncode == 0, trig.stderr
    job_id = trig.stdout.strip()
    assert job_id.startswith("cron.nightly.manual.")
    wait_until(lambda: job_id in result_keys(nats_server.url, "cron.nightly."), 20, what="run")

    unknown = naqd_cli("schedules", "trigger", "nope", "--config", config)
    assert unknown.returncode == 3 and "unknown schedule 'nope'" in unknown.stderr


def test_sighup_applies_queue_changes_to_those_queues_only(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    daemon = daemon_factory(
        SCHEDULED.replace("queues: {default:", "queues: {old: {concurrency: 1}, default:"),
        ready_workers=2,
    )
    daemon.wait_for_log("scheduler ready")

    def pids(queue: str) -> list[str]:
        return re.findall(rf"started worker\[{queue}\]#\d \(pid (\d+)\)", daemon.log)

    default_pids = pids("default")
    text = daemon.config_path.read_text()
    daemon.config_path.write_text(text.replace("old: {concurrency: 1}", "new: {concurrency: 2}"))
    daemon.send(signal.SIGHUP)
    daemon.wait_for_log("worker[old]#0 stopped after reload")
    daemon.wait_for_log("ready: queue new")
    with SyncClient(nats_server.url) as client:
        assert client.enqueue("tests.tasks:add", 2, 3, queue="new").result(timeout=20) == 5
    assert pids("default") == default_pids  # unchanged queue: same process
    assert "died with" not in daemon.log
