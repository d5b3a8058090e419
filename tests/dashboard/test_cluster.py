"""The console on a three-node NATS cluster (streams replicated three times): the API
reads and acts as on one server, and it rides out the loss of a node by itself."""

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


def test_the_console_on_a_cluster_reads_acts_and_survives_a_node(console: Console) -> None:
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
    cluster: Cluster = console.nats  # type: ignore[assignment]
    cluster.cluster.kill(0)  # whichever node the console used, two remain
    wait_until(lambda: op.get("/api/v1/queues").status == 200, 30, what="console after a node")
    # A write needs the stream's and the meta group's leaders: until the two nodes left
    # have elected them, an action answers 503 (or times out); it then goes through.
    wait_until(
        lambda: op.post("/api/v1/queues/default/resume").status == 200,
        60,
        what="resume once the cluster has its leaders again",
    )
    wait_until(
        lambda: any(d["id"] == job for d in op.get("/api/v1/dead-letters").json()["items"]),
        30,
        what="the requeued job ran (and died again)",
    )
