"""`ps` tells naqd's processes apart by their titles."""

from __future__ import annotations

from pathlib import Path

from tests.natsserver import wait_until
from tests.process.test_observe import child_pids


def title(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def test_each_process_shows_its_role_queue_and_index(daemon_factory) -> None:
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {processes: 2}}
        """,
        ready_workers=2,
    )
    daemon.wait_for_log("scheduler ready")
    wait_until(lambda: len(child_pids(daemon)) == 3, 10, what="children listed")
    titles = sorted(title(pid) for pid in child_pids(daemon))
    assert titles == ["naqd: scheduler", "naqd: worker[default]#0", "naqd: worker[default]#1"]
    assert title(daemon.proc.pid) == "naqd: supervisor"
