"""A power cut under naqd's embedded server: kill -9 of every process, then every write
that was not fsynced is dropped (tests/crash/lazyfs.py), then naqd starts again on the
same store. Acknowledged jobs and stored results must all be there; re-runs are allowed.
The counts are printed for docs/guarantees.md#power-cut."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from naqd import SyncClient
from tests.crash.harness import require_fuse
from tests.crash.scenario import TASK, Node, Round, enqueue_limbo, stored_in_limbo
from tests.natsserver import wait_until


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    require_fuse()
    node = Node(tmp_path)
    yield node
    node.stop()


def test_default_config_loses_nothing_on_a_fresh_and_on_an_existing_stream(node: Node) -> None:
    node.start()  # nats.embedded.sync unset: the default
    with SyncClient(node.url) as client:
        fresh = Round(node, base=0)
        fresh.load(client)  # streams created moments ago
    node.crash()

    node.start()
    with SyncClient(node.url) as client:
        counts = fresh.verify(client)
        print("fresh stream:", counts)
        assert counts.lost == 0, counts.details
        existing = Round(node, base=10_000)
        existing.load(client)
    node.crash()

    node.start()
    with SyncClient(node.url) as client:
        counts = existing.verify(client)
        print("existing stream:", counts)
        assert counts.lost == 0, counts.details


def test_sync_interval_loses_at_most_what_came_after_the_last_sync(node: Node) -> None:
    """`nats.embedded.sync: 300ms`: what was acknowledged before a completed sync round
    survives; what came after it is the documented loss window. The store then restarts
    under the default (`always`) and keeps what it had."""
    node.start(sync="300ms")
    node.fs.writeback()  # streams made long ago: the kernel has flushed their metadata
    with SyncClient(node.url) as client:
        synced = Round(node, base=0, size=100)
        synced.load(client)
        node.fs.wait_for_sync_round(0.3)
        enqueue_limbo(node, client, list(range(50_000, 50_200)))
    node.crash()

    node.start(sync=None)
    lost_in_window = 200 - stored_in_limbo(node)
    with SyncClient(node.url) as client:
        counts = synced.verify(client)
    print(f"before the last sync: {counts}; acknowledged after it: {lost_in_window} of 200 lost")
    assert counts.lost == 0, counts.details


def test_a_consumer_ahead_of_its_stream_is_repaired_at_startup(node: Node) -> None:
    """A power cut soon after the first start under `sync: 2m` (nats-server's own
    default): the streams' metadata was never synced, so the server drops them, while
    the flusher had written a queue consumer's state. naqd recreates the stream, the
    consumer it adds finds that state and its position past the stream's end. naqd must
    recreate the consumer, say so, count it, and run the jobs enqueued afterwards."""
    node.start(sync="2m")
    obs = "nats/jetstream/$G/streams/NAQD_JOBS/obs/q-done"
    state = node.fs.mnt / obs / "o.dat"
    before = state.read_bytes() if state.exists() else b""
    with SyncClient(node.url) as client:
        jobs = client.enqueue_many(TASK, [(str(node.work), n) for n in range(100)], queue="done")
        for job in jobs:
            job.result(timeout=90)
    wait_until(lambda: state.exists() and state.read_bytes() != before, 60, what="o.dat written")
    node.fs.writeback(obs)  # the consumer's state reaches the disk, the jobs' messages do not
    node.crash()

    daemon = node.start()
    daemon.wait_for_log("no longer matches its stream", timeout=90)
    with SyncClient(node.url) as client:
        new = list(range(1000, 1050))
        client.enqueue_many(TASK, [(str(node.work), n) for n in new], queue="done")
        wait_until(lambda: set(new) <= set(node.runs()), 90, what="jobs enqueued after the crash")
    metrics = urllib.request.urlopen(node.metrics_url + "/metrics").read().decode()
    assert 'naqd_consumers_repaired_total{consumer="q-done"}' in metrics, metrics
