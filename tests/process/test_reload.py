"""SIGHUP reloads of the real daemon: a reload never stops a serving daemon, and the
children it replaces roll one at a time."""

from __future__ import annotations

import signal
from pathlib import Path

from naqd import SyncClient
from tests.natsserver import wait_until
from tests.process.test_observe import child_pids, healthz, scrape, value

BASE = """
tasks: {imports: [tests.tasks]}
scheduler: {enabled: false}
queues: {default: {concurrency: 2, processes: 2}}
heartbeat: {interval: 1s}
shutdown: {grace_period: 5s}
"""


def reload_with(daemon, old: str, new: str) -> None:
    text = daemon.config_path.read_text()
    assert old in text
    daemon.config_path.write_text(text.replace(old, new))
    daemon.send(signal.SIGHUP)


def test_an_unimportable_task_module_is_refused_and_nothing_restarts(
    daemon_factory, nats_server
) -> None:
    daemon = daemon_factory(BASE, ready_workers=2)
    base = daemon.metrics_url
    wait_until(lambda: healthz(base) == 200, 20, what="healthy")
    before = sorted(child_pids(daemon))
    reload_with(daemon, "[tests.tasks]", "[tests.tasks, tests.no_such_module]")
    wait_until(
        lambda: value(scrape(base), "naqd_config_last_reload_successful") == 0,
        30,
        what="reload marked failed",
    )
    assert "cannot import task module 'tests.no_such_module'" in daemon.log
    assert "keeping the running configuration (a child could not boot with it" in daemon.log
    assert daemon.proc.poll() is None
    assert sorted(child_pids(daemon)) == before  # no child was touched
    with SyncClient(nats_server.url) as client:
        assert client.enqueue("tests.tasks:add", 1, 1).result(timeout=20) == 2


def test_a_new_child_failing_at_boot_rolls_the_reload_back(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    marker = tmp_path / "imported-once"
    daemon = daemon_factory(BASE, ready_workers=2, env={"NAQD_TEST_IMPORT_ONCE": str(marker)})
    base = daemon.metrics_url
    wait_until(lambda: healthz(base) == 200, 20, what="healthy")
    # The reload's check imports it once; the replacement child's import then fails (78).
    reload_with(daemon, "[tests.tasks]", "[tests.tasks, tests.import_once]")
    daemon.wait_for_log("cannot start with the new configuration", timeout=30)
    assert marker.exists()
    wait_until(
        lambda: value(scrape(base), "naqd_config_last_reload_successful") == 0,
        20,
        what="reload marked failed",
    )
    # Back on the old config: both workers serve, the daemon never stopped.
    wait_until(lambda: healthz(base) == 200, 30, what="healthy after the rollback")
    assert daemon.proc.poll() is None
    assert "stopping naqd" not in daemon.log
    with SyncClient(nats_server.url) as client:
        jobs = [client.enqueue("tests.tasks:add", i, 1) for i in range(6)]
        assert [j.result(timeout=20) for j in jobs] == [i + 1 for i in range(6)]


def test_a_reload_replaces_a_queues_processes_one_at_a_time(daemon_factory, nats_server) -> None:
    daemon = daemon_factory(BASE, ready_workers=2)
    base = daemon.metrics_url
    wait_until(lambda: healthz(base) == 200, 20, what="healthy")
    old = set(child_pids(daemon))
    reload_with(daemon, "concurrency: 2", "concurrency: 3")
    daemon.wait_for_log("reload complete", timeout=60)
    new = set(child_pids(daemon))
    assert len(new) == 2 and not (new & old)
    log = daemon.log
    first = log.index("reload: replacing worker[default]#0")
    second = log.index("reload: replacing worker[default]#1")
    # The second is replaced only after the first replacement is ready (the third
    # 'ready' line), and each old one drains while its replacement runs.
    third_ready = _nth(log, "ready: queue default concurrency 3", 1)
    assert first < third_ready < second
    assert log.count("stopped after reload") == 2
    assert healthz(base) == 200
    with SyncClient(nats_server.url) as client:
        assert client.enqueue("tests.tasks:add", 2, 3).result(timeout=20) == 5


def _nth(text: str, needle: str, n: int) -> int:
    at = -1
    for _ in range(n):
        at = text.index(needle, at + 1)
    return at


def test_the_watchdog_is_fed_while_a_reload_checks_a_slow_import(
    daemon_factory, tmp_path: Path
) -> None:
    """The supervisor waits on the reload's throw-away import; systemd must not take that
    for a hung daemon (WatchdogSec=30 in the unit, a slow import can take longer)."""
    from tests.process.test_observe import NotifySocket

    notify = NotifySocket(tmp_path / "notify.sock")
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {
        "NOTIFY_SOCKET": notify.path,
        "WATCHDOG_USEC": "1000000",  # a ping every 0.5 s
        "NAQD_TEST_SLOW_IMPORT_DIR": str(marks),
        "NAQD_TEST_SLOW_IMPORT_SECONDS": "3",
    }
    try:
        daemon = daemon_factory(BASE, ready_workers=2, env=env)
        wait_until(lambda: notify.count("WATCHDOG=1") >= 2, 20, what="watchdog pings")
        reload_with(daemon, "[tests.tasks]", "[tests.tasks, tests.slow_import]")
        wait_until(lambda: (marks / "started").exists(), 20, what="the check's import")
        pings = notify.count("WATCHDOG=1")
        wait_until(lambda: (marks / "done").exists(), 20, what="the import to end")
        assert notify.count("WATCHDOG=1") >= pings + 3  # ~6 in the 3 s it took
        daemon.wait_for_log("reload complete")
    finally:
        notify.close()
