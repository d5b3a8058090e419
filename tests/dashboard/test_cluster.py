"""The console on a three-node NATS cluster (streams replicated three times): the API
reads and acts as on one server. (Losing a node under it is not tested here: an action
right after a node was killed did not always go through within 60 s; an open item.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dashboard.helpers import OPERATOR_TOKEN, Browserless, Console, start_console
from tests.natsserver import NatsCluster, wait_until

pytestmark = pytest.mark.timeout(180)


class Cluster:
    """A NatsCluster shaped like NatsServer for the console helpers."""

    def __init__(self, base: Path) -> None:
        self.cluster = NatsCluster(base).start()
        self.url = ",".join(self.cluster.urls)

    def stop(self) -> None:
        self.cluster.stop()


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    cluster = Cluster(tmp_path / "cluster")
    c = start_console(tmp_path, nats=cluster)
    yield c
    c.daemon.stop()
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
