"""Unique jobs against the real daemon where the scheduler takes part: a unique
dependent releases its key after it ran (the rest is in tests/inproc/test_unique_jobs.py)."""

from __future__ import annotations

from pathlib import Path

from naqd import SyncClient

BODY = """
tasks: {imports: [tests.tasks]}
queues: {default: {concurrency: 4, ack_wait: 5s}}
# A short lease: a new leader fires its first round one renew interval (default 5 s) in.
scheduler: {leader_election: {lease: 2s, renew_every: 0.5s}}
shutdown: {grace_period: 5s}
"""


def runs(directory: Path) -> int:
    path = directory / "runs"
    return len(path.read_text().split()) if path.exists() else 0


def test_a_unique_dependent_releases_its_key_after_it_ran(
    daemon_factory, nats_server, tmp_path
) -> None:
    daemon_factory(BODY, ready_workers=1)
    with SyncClient(nats_server.url) as client:
        parent = client.enqueue("tests.tasks:block_until_released", str(tmp_path))
        child = client.enqueue("tests.tasks:add", 1, 2, depends_on=[parent], unique_key="c")
        assert client.enqueue("tests.tasks:add", 1, 2, unique_key="c").id == child.id
        (tmp_path / "release").touch()
        assert child.result(timeout=30) == 3
        # The released job kept its lock header, so the worker freed the key.
        again = client.enqueue("tests.tasks:add", 1, 2, unique_key="c")
        assert again.id != child.id and again.result(timeout=20) == 3
