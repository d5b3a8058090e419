"""Scenarios 2 and 3: the NATS side fails under load (a server restart; the stream
leader of a 3-node cluster killed). No job is lost; duplicates stay bounded."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from naqd import SyncClient
from tests.conftest import Daemon
from tests.faults.helpers import assert_all_ran, runs
from tests.natsserver import NatsCluster, wait_until


def enqueue_in_background(
    url: str | list[str], directory: Path, numbers: range
) -> threading.Thread:
    """Enqueue while the fault happens: the client must retry with the same msg id."""
    errors: list[BaseException] = []

    def go() -> None:
        try:
            with SyncClient(url, publish_deadline=30.0) as client:
                for n in numbers:
                    client.enqueue("tests.tasks:record", str(directory), n, 0.05)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=go, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def test_nats_restart_mid_run_loses_no_job(daemon_factory, nats_server, tmp_path: Path) -> None:
    daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {concurrency: 16, processes: 2, ack_wait: 5s, retries: 5}}
        """,
        ready_workers=2,
    )
    total = 2000
    first = enqueue_in_background(nats_server.url, tmp_path, range(0, 1000))
    first.join(60)
    assert not first.errors  # type: ignore[attr-defined]
    second = enqueue_in_background(nats_server.url, tmp_path, range(1000, total))
    wait_until(lambda: len(runs(tmp_path)) >= 300, 60, what="jobs running")
    nats_server.stop()  # same port and store dir on restart
    assert len(runs(tmp_path)) < total - 500  # the restart is mid-run
    nats_server.start()
    second.join(90)
    assert not second.is_alive() and not second.errors  # type: ignore[attr-defined]
    wait_until(lambda: len(runs(tmp_path)) == total, 90, what="all jobs ran")
    # In flight at the restart: 2 x 16 slots, plus enqueues whose PubAck was lost.
    assert_all_ran(runs(tmp_path), total, max_duplicates=64)


def test_an_outage_logs_its_error_once_not_twice_a_second(daemon_factory, nats_server) -> None:
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        scheduler: {enabled: false}
        queues: {default: {concurrency: 1}}
        """,
        ready_workers=1,
    )
    nats_server.stop()
    daemon.wait_for_log("nats data: disconnected")
    t0 = time.monotonic()
    # Reconnect attempts come every 0.5 s: let 8 or more of them fail.
    wait_until(lambda: time.monotonic() - t0 > 4, 10, what="4 s of outage")
    nats_server.start()
    daemon.wait_for_log("nats data: reconnected (")
    errors = re.findall(r"WARNING .*nats data: (?!disconnected)(.*)", daemon.log)
    assert 1 <= len(errors) <= 2, errors  # the first, and at most one 30 s reminder
    left_out = re.search(r"nats data: reconnected \((\d+) repeated error", daemon.log)
    assert left_out is not None and int(left_out.group(1)) >= 4, daemon.log[-2000:]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    c = NatsCluster(tmp_path / "cluster").start()
    yield c
    c.stop()


async def _stream_leader(urls: list[str], stream: str) -> str | None:
    nc = await nats.connect(servers=urls, connect_timeout=2, max_reconnect_attempts=2)
    try:
        info = await nc.jetstream().stream_info(stream)
        return info.cluster.leader if info.cluster else None
    except Exception:
        return None
    finally:
        await nc.close()


def test_stream_leader_killed_in_a_cluster_loses_no_job(cluster: NatsCluster, tmp_path: Path):
    urls = ",".join(cluster.urls)
    config = tmp_path / "naq.yaml"
    config.write_text(
        f"""
nats: {{servers: "{urls}", replicas: 3}}
tasks: {{imports: [tests.tasks]}}
queues: {{default: {{concurrency: 16, processes: 2, ack_wait: 5s, retries: 5}}}}
"""
    )
    daemon = Daemon(config, tmp_path / "naqd.log").start()
    try:
        daemon.wait_for_log("ready: queue", count=2, timeout=60)
        total = 2000
        first = enqueue_in_background(cluster.urls, tmp_path, range(0, 1000))
        first.join(90)
        assert not first.errors  # type: ignore[attr-defined]
        leader = asyncio.run(_stream_leader(cluster.urls, "NAQD_JOBS"))
        assert leader is not None
        second = enqueue_in_background(cluster.urls, tmp_path, range(1000, total))
        wait_until(lambda: len(runs(tmp_path)) >= 300, 60, what="jobs running")
        cluster.kill(cluster.node_of(leader))
        assert len(runs(tmp_path)) < total - 500  # the kill is mid-run
        second.join(120)
        assert not second.is_alive() and not second.errors  # type: ignore[attr-defined]
        wait_until(lambda: len(runs(tmp_path)) == total, 120, what="all jobs ran")
        new_leader = asyncio.run(_stream_leader(cluster.urls, "NAQD_JOBS"))
        assert new_leader not in (None, leader)
        assert_all_ran(runs(tmp_path), total, max_duplicates=64)
    finally:
        daemon.stop()


async def test_enqueue_rides_out_a_nats_restart_and_dedupes_its_retry(nats_server) -> None:
    from naqd import Client
    from naqd.config import Config
    from naqd.protocol.resources import ensure_resources

    async with Client(nats_server.url, publish_deadline=30) as client:
        await ensure_resources(client.nc.jetstream(), Config())
        nats_server.stop()
        enqueue = asyncio.create_task(client.enqueue("tests.tasks:add", 1, 2, job_id="during"))
        deadline = asyncio.get_running_loop().time() + 10
        while not client.nc.is_reconnecting:  # the client knows the server is gone
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # let the publish fail at least once against no server
        nats_server.start()
        job = await asyncio.wait_for(enqueue, 40)
        assert job.id == "during"
        again = await client.enqueue("tests.tasks:add", 1, 2, job_id="during")
        info = await client.nc.jetstream().stream_info("NAQD_JOBS")
        assert again.id == "during" and info.state.messages == 1


async def test_enqueue_gives_up_with_a_clear_error_at_its_deadline(nats_server) -> None:
    from naqd import Client, EnqueueError

    async with Client(nats_server.url, publish_deadline=1.0) as client:
        nats_server.stop()
        with pytest.raises(EnqueueError, match=r"could not enqueue .* within 1.0s"):
            await client.enqueue("tests.tasks:add", 1, 2)
        # A bulk enqueue shares one deadline: its failed writes are not each given a
        # deadline of their own (100 jobs took 100 s before), so it fails well within 30 s.
        with pytest.raises(EnqueueError, match=r"could not enqueue .* within 1.0s"):
            await asyncio.wait_for(client.enqueue_many("tests.tasks:add", [(1, 2)] * 100), 30)
        nats_server.start()
