"""A middleware listed in naq.yaml (tests/mw.py's `Audit`) in a real daemon: the worker
runs its job hooks on every job, the scheduler its enqueue hooks on a fired job (the
header it adds reaches the worker), and `Client.from_config` its enqueue hooks in the
producer. Every hook call is a JSON line in one file, written by whichever process ran
it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from naqd import JobFailed, SyncClient
from naqd.config import load_config
from tests.mw import AUDIT_HEADER
from tests.natsserver import wait_until

CONFIG = """
tasks: {{imports: [tests.tasks]}}
middleware: [tests.mw:Audit]
queues:
  default: {{concurrency: 4, retries: 1, backoff: [0.05]}}
scheduler: {{leader_election: {{lease: 2s, renew_every: 0.5s}}}}
schedules:
  ticker: {{every: 1s, task: "tests.tasks:add", args: [20, 22]}}
"""


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_middleware_from_naq_yaml_sees_every_job(
    daemon_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv("NAQD_TEST_AUDIT", str(audit))  # this process's Client, and the daemon
    daemon = daemon_factory(CONFIG.format(), env={"NAQD_TEST_AUDIT": str(audit)})
    daemon.wait_for_log("ready: queue", timeout=60)  # two children booting on a busy box
    config = load_config(daemon.config_path)
    with SyncClient.from_config(config) as client:  # the file's middleware, here too
        ok = client.enqueue("tests.tasks:add", 1, 2)
        failing = client.enqueue("tests.tasks:always_fail", str(tmp_path))
        assert ok.result(timeout=20) == 3
        with pytest.raises(JobFailed):
            failing.result(timeout=20)

    def fired_and_done() -> str | None:
        lines = _lines(audit)
        fired = {line["job"] for line in lines if line["hook"] == "on_schedule_fire"}
        done = {line["job"] for line in lines if line["hook"] == "on_success"}
        return next(iter(fired & done), None)

    fired = wait_until(fired_and_done, 20, what="a fired job that succeeded")
    lines = _lines(audit)
    me = os.getpid()

    def hooks(job_id: str, producer: bool) -> list[str]:
        """The hooks of one side, in order: the producer's after_enqueue and the worker's
        first hook race (another process), so each side is read apart."""
        return [
            line["hook"]
            for line in lines
            if line.get("job") == job_id and (line["pid"] == me) == producer
        ]

    def one(hook: str, job_id: str) -> dict[str, Any]:
        (line,) = [x for x in lines if x["hook"] == hook and x.get("job") == job_id]
        return line

    # The producer here: its hooks ran in this process and tagged the jobs.
    assert hooks(ok.id, producer=True) == ["before_enqueue", "after_enqueue"]
    assert one("before_enqueue", ok.id)["pid"] == me
    assert one("after_enqueue", ok.id)["error"] is None
    # The worker: every attempt inside around_job, each outcome once, with the header.
    assert hooks(ok.id, producer=False) == ["enter", "on_success", "exit"]
    assert one("on_success", ok.id)["result"] == 3
    enter = one("enter", ok.id)
    assert enter["headers"][AUDIT_HEADER] == f"audit:{me}" and enter["pid"] != me
    assert hooks(failing.id, producer=False) == [
        *("enter", "on_retry", "exit"),
        *("enter", "on_dead_letter", "exit"),
    ]
    assert one("on_dead_letter", failing.id)["reason"] == "failed"
    # The scheduler: its enqueue hooks tagged the fired job, in its own process.
    scheduler_pid = one("before_enqueue", fired)["pid"]
    assert scheduler_pid not in (me, enter["pid"])
    assert one("after_enqueue", fired)["pid"] == scheduler_pid
    assert one("on_schedule_fire", fired)["schedule"] == "ticker"
    assert one("enter", fired)["headers"][AUDIT_HEADER] == f"audit:{scheduler_pid}"
    assert "middleware Audit" not in daemon.log  # no hook raised along the way
