"""The console as a child of `naqd run`: a SIGHUP that adds a `dashboard:` section starts
it, one that moves it restarts it on the new address, and a console that dies is
restarted by the supervisor, heartbeat and all."""

from __future__ import annotations

import os
import signal
import textwrap

import pytest

from tests.dashboard.helpers import VIEWER_TOKEN, Browserless
from tests.natsserver import free_port, wait_until

pytestmark = pytest.mark.timeout(180)

BASE = """
tasks: {imports: [tests.tasks]}
queues:
  default: {concurrency: 2}
heartbeat: {interval: 1s}
"""


def dashboard(port: int) -> str:
    return textwrap.dedent(
        f"""
        dashboard:
          listen: 127.0.0.1:{port}
          tokens:
            grafana: {{token: "{VIEWER_TOKEN}", role: viewer}}
        """
    )


def answers(port: int) -> bool:
    return Browserless(f"http://127.0.0.1:{port}", VIEWER_TOKEN).get("/api/v1/me").status == 200


def console_pid(nats_url: str, naqd) -> int | None:
    import json

    out = naqd("workers", "--servers", nats_url, "--json").stdout or "[]"
    pids = [w["pid"] for w in json.loads(out) if w.get("role") == "dashboard"]
    return pids[0] if len(pids) == 1 else None


def test_reload_starts_moves_and_the_supervisor_restarts_the_console(
    daemon_factory, nats_server
) -> None:
    from tests.process.test_ops_cli import naqd

    daemon = daemon_factory(BASE, ready_workers=1)
    config = daemon.config_path
    first, second = free_port(), free_port()
    config.write_text(config.read_text() + dashboard(first))
    daemon.send(signal.SIGHUP)
    wait_until(lambda: answers(first), 30, what="console started by the reload")
    pid = wait_until(lambda: console_pid(nats_server.url, naqd), 20, what="its heartbeat")
    # The second reload also adds a cron schedule: the console shows it at once (the old
    # status page said "no schedules configured" while it fired every minute).
    config.write_text(
        config.read_text().replace(f":{first}", f":{second}")
        + 'schedules:\n  minutely: {cron: "* * * * *", task: "tests.tasks:add", args: [1, 2]}\n'
    )
    daemon.send(signal.SIGHUP)
    wait_until(lambda: answers(second), 30, what="console on the new port")
    viewer = Browserless(f"http://127.0.0.1:{second}", VIEWER_TOKEN)
    wait_until(
        lambda: (
            [(s["name"], s["origin"]) for s in viewer.get("/api/v1/schedules").json()["items"]]
            == [("minutely", "yaml")]
        ),
        30,
        what="the new schedule in the console",
    )
    wait_until(lambda: not answers(first), 10, what="the old address let go")
    moved = wait_until(
        lambda: (p := console_pid(nats_server.url, naqd)) and p != pid and p, 20, what="new pid"
    )
    os.kill(moved, signal.SIGKILL)
    wait_until(
        lambda: (p := console_pid(nats_server.url, naqd)) and p != moved and answers(second),
        30,
        what="the supervisor restarted the console",
    )
    daemon.wait_for_log("dashboard (pid")
