"""The console on a three-node NATS cluster (streams replicated three times): the API
reads and acts as on one server, and goes on doing so once a node is lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.js.errors import NotFoundError

from naqd.protocol.audit import audit_stream_config
from naqd.protocol.names import AUDIT_STREAM
from tests.dashboard.helpers import OPERATOR_TOKEN, Browserless, Console, Reply, start_console
from tests.natsserver import NatsCluster, wait_until

pytestmark = pytest.mark.timeout(180)


class Cluster:
    """A NatsCluster shaped like NatsServer for the console helpers."""

    def __init__(self, base: Path) -> None:
        self.cluster = NatsCluster(base).start()
        self.url = ",".join(self.cluster.urls)

    def stop(self) -> None:
        self.cluster.stop()

    def add_single_replica_audit(self) -> None:
        """NAQD_AUDIT as a client's fallback made it before the console applied
        `nats.replicas` at its boot: one replica."""

        async def go() -> None:
            nc = await nats.connect(self.cluster.urls)
            try:
                js = nc.jetstream()
                deadline = time.monotonic() + 30
                while True:  # a fresh cluster answers once it elected its meta leader
                    try:
                        await js.add_stream(audit_stream_config(replicas=1))
                        return
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.2)
            finally:
                await nc.close()

        asyncio.run(go())

    def audit_replicas(self, delete: bool = False) -> int:
        """NAQD_AUDIT's replica count (0: no such stream); `delete` removes it after."""

        async def go() -> int:
            nc = await nats.connect(self.cluster.urls)
            try:
                js = nc.jetstream()
                try:
                    info = await js.stream_info(AUDIT_STREAM)
                except NotFoundError:
                    return 0
                if delete:
                    await js.delete_stream(AUDIT_STREAM)
                return int(info.config.num_replicas or 1)
            finally:
                await nc.close()

        return asyncio.run(go())


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    cluster = Cluster(tmp_path / "cluster")
    try:  # a set-up that fails must not leave three servers running
        cluster.add_single_replica_audit()  # the console's boot scales it up
        c = start_console(tmp_path, nats=cluster)
        try:
            yield c
        finally:
            c.daemon.stop()
    finally:
        cluster.stop()


def test_the_console_on_a_cluster_reads_and_acts(console: Console) -> None:
    op = Browserless(console.url, OPERATOR_TOKEN)
    job = console.enqueue("tests.tasks:fail", '"on a cluster"', job_id="cluster-dead")
    wait_until(
        lambda: any(d["id"] == job for d in op.get("/api/v1/dead-letters").json()["items"]),
        30,
        what="dead letter",
    )
    detail = op.get(f"/api/v1/jobs/{job}").json()
    assert detail["state"] == "dead" and detail["error_message"] == "on a cluster"
    assert op.post("/api/v1/queues/default/pause").status == 200
    assert op.post(f"/api/v1/dead-letters/{job}/requeue").json()["count"] == 1
    queued = op.get("/api/v1/jobs?queue=default&state=queued").json()["items"]
    assert [j["id"] for j in queued] == [job]
    assert op.post("/api/v1/queues/default/resume").status == 200
    wait_until(
        lambda: any(d["id"] == job for d in op.get("/api/v1/dead-letters").json()["items"]),
        30,
        what="the requeued job ran (and died again)",
    )
    # The audit trail is replicated like every stream: the console's boot scaled the R1
    # one up, and a client that finds none creates it with the jobs stream's count.
    assert console.nats.audit_replicas(delete=True) == 3
    assert op.post("/api/v1/queues/default/pause").status == 200
    assert console.nats.audit_replicas() == 3
    assert op.post("/api/v1/queues/default/resume").status == 200
    # A node is lost (the console's own connection, a stream leader, or neither): the
    # two left keep quorum, and the console reads and acts again once NATS has moved
    # the leaders (5 s measured; a second loss right after the first's restart, before
    # it caught up, leaves no quorum and is not tested). Every stream the console
    # writes is replicated: an R1 audit trail on the lost node timed each action out.
    lost = time.time()
    console.nats.cluster.kill(0)
    replies: list[Reply] = []

    def acts() -> bool:
        replies.append(op.post("/api/v1/queues/default/pause"))
        return replies[-1].status == 200

    def reads() -> bool:
        reply = op.get("/api/v1/dead-letters")
        replies.append(reply)
        return reply.status == 200 and any(d["id"] == job for d in reply.json()["items"])

    for step, what in ((acts, "an action"), (reads, "a read")):
        try:
            wait_until(step, 60, interval=0.5, what=f"{what} after a node was lost")
        except AssertionError as exc:
            last = replies[-1]
            raise AssertionError(f"{exc}; last reply {last.status}: {last.text[:200]}") from None
    assert op.post("/api/v1/queues/default/resume").status == 200
    wait_until(
        lambda: any(
            e["action"] == "queue.resume" and e["at"] >= lost
            for e in op.get("/api/v1/audit?target=default").json()["items"]
        ),
        30,
        what="the audit entry of an action after the loss",
    )
