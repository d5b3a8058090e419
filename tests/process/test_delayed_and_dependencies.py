"""Dependencies through the real daemon (the scheduler releases or fails them): chains
release or fail in order and survive a restart. Delayed jobs are in tests/inproc."""

from __future__ import annotations

from pathlib import Path

import pytest

from naqd import JobFailed, SyncClient

BODY = """
tasks: {imports: [tests.tasks]}
queues: {default: {concurrency: 4, retries: 0}}
scheduler: {leader_election: {lease: 2s, renew_every: 0.5s}}
shutdown: {grace_period: 5s}
"""


def test_dependency_chain_runs_in_order(daemon_factory, nats_server, tmp_path: Path) -> None:
    daemon_factory(BODY, ready_workers=1)
    with SyncClient(nats_server.url) as client:
        # B and C are enqueued before A exists; A is enqueued last.
        b = client.enqueue("tests.tasks:add", 2, 2, depends_on=["job-a"])
        c = client.enqueue("tests.tasks:add", 3, 3, depends_on=[b])
        a = client.enqueue("tests.tasks:add", 1, 1, job_id="job-a")
        assert c.result(timeout=30) == 6
        ra, rb, rc = (client.record(j.id) for j in (a, b, c))
        # A parent that finished before its dependent was enqueued releases it at once.
        d = client.enqueue("tests.tasks:add", 4, 4, depends_on=[a, c])
        assert d.result(timeout=30) == 8
    assert ra.finished_at <= rb.started_at and rb.finished_at <= rc.started_at


def test_failing_parent_fails_its_dependents_with_reasons(daemon_factory, nats_server) -> None:
    daemon_factory(BODY, ready_workers=1)
    with SyncClient(nats_server.url) as client:
        a = client.enqueue("tests.tasks:fail", "boom")
        b = client.enqueue("tests.tasks:add", 1, 1, depends_on=[a])
        c = client.enqueue("tests.tasks:add", 2, 2, depends_on=[b])
        with pytest.raises(JobFailed) as failed_c:
            c.result(timeout=30)
        with pytest.raises(JobFailed) as failed_b:
            b.result(timeout=5)
    assert failed_b.value.error_type == "DependencyFailed"
    assert failed_b.value.message.startswith(f"dependency {a.id} failed: ")
    assert "boom" in failed_b.value.message
    assert failed_c.value.message.startswith(f"dependency {b.id} failed: DependencyFailed: ")


def test_a_waiting_dependent_survives_a_naqd_restart(daemon_factory, nats_server) -> None:
    first = daemon_factory(BODY, ready_workers=1, name="first")
    with SyncClient(nats_server.url) as client:
        child = client.enqueue("tests.tasks:add", 5, 5, depends_on=["parent-x"])
        first.stop()
        daemon_factory(BODY, ready_workers=1, name="second")
        client.enqueue("tests.tasks:add", 0, 1, job_id="parent-x")
        assert child.result(timeout=30) == 10


async def test_a_failed_dependency_is_announced_like_any_outcome(
    daemon_factory, nats_server
) -> None:
    """A non-Python waiter listens on naqd.done.<id>: a dependent failed by the scheduler
    must be announced there too, not only stored."""
    import asyncio
    import json

    from naqd import Client

    daemon_factory(BODY, ready_workers=1)
    async with Client(nats_server.url) as client:
        a = await client.enqueue("tests.tasks:fail", "boom")
        b_id = "dependent-of-a-failure"
        notice: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def on_done(msg) -> None:
            if not notice.done():
                notice.set_result(msg.data)

        await client.nc.subscribe(f"naqd.done.{b_id}", cb=on_done)
        await client.enqueue("tests.tasks:add", 1, 1, job_id=b_id, depends_on=[a])
        record = json.loads(await asyncio.wait_for(notice, 30))
    assert record["status"] == "failed" and record["error"]["type"] == "DependencyFailed"
