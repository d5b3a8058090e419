"""The example config, run for real: JSON only, and every listening socket of the daemon
and its children (embedded nats-server included) is on loopback."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from naqd import SyncClient
from tests.conftest import REPO, Daemon
from tests.natsserver import free_port


def _tree(root: int) -> set[int]:
    """`root` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found = {root}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    return found


def _socket_inodes(pids: set[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    return inodes


def _listening(inodes: set[str]) -> list[tuple[str, int]]:
    """(hex local address, port) of LISTEN sockets (state 0A) owned by `inodes`."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                address, port = fields[1].split(":")
                out.append((address, int(port, 16)))
    return out


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1


def test_example_config_runs_json_and_listens_on_loopback_only(tmp_path: Path) -> None:
    nats_port, metrics_port = free_port(), free_port()
    text = (REPO / "config" / "naq.yaml").read_text()
    text = text.replace("127.0.0.1:4222", f"127.0.0.1:{nats_port}")
    text = text.replace("127.0.0.1:9464", f"127.0.0.1:{metrics_port}")
    config = tmp_path / "naq.yaml"
    config.write_text(text)
    daemon = Daemon(config, tmp_path / "naqd.log").start()
    try:
        daemon.wait_for_log("ready: queue", count=3)  # default x2, emails x1
        with SyncClient(f"nats://127.0.0.1:{nats_port}") as client:
            job = client.enqueue("examples.tasks:add", 2, 3)
            assert job.result(timeout=20) == 5
            record = client.record(job.id)
            assert record is not None and record.encoding == "json"
        assert daemon.proc is not None
        sockets = _listening(_socket_inodes(_tree(daemon.proc.pid)))
        assert any(port == nats_port for _, port in sockets), sockets
        assert all(address in LOOPBACK for address, _ in sockets), sockets
        daemon.send(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        daemon.stop()


def test_unreadable_signing_key_file_stops_the_daemon_with_78(tmp_path: Path, nats_server) -> None:
    config = tmp_path / "naq.yaml"
    config.write_text(
        f"""
nats: {{servers: ["{nats_server.url}"]}}
tasks: {{imports: [tests.tasks], serializer: pickle, signing_key_file: {tmp_path / "missing"}}}
queues: {{default: {{processes: 2}}}}
"""
    )
    daemon = Daemon(config, tmp_path / "naqd.log").start()
    try:
        assert daemon.wait(30) == 78
    finally:
        daemon.stop()
    assert "cannot read tasks.signing_key_file" in daemon.log
    assert "restarting in" not in daemon.log
