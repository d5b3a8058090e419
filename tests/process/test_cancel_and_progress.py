"""Cancel against the real daemon where the scheduler takes part: dependents of a
cancelled job fail. (The worker side of cancel and progress is tested in-process, in
tests/inproc/test_cancel_and_progress.py.)"""

from __future__ import annotations

from naqd import SyncClient

ONE_SLOT = """
tasks: {imports: [tests.tasks]}
queues: {default: {concurrency: 1, ack_wait: 5s, retries: 2}}
# A short lease: a new leader fires its first round one renew interval (default 5 s) in.
scheduler: {leader_election: {lease: 2s, renew_every: 0.5s}}
shutdown: {grace_period: 5s}
"""


def test_dependents_of_a_cancelled_job_fail_naming_it(daemon_factory, nats_server) -> None:
    daemon_factory(ONE_SLOT, ready_workers=1)
    with SyncClient(nats_server.url) as client:
        parent = client.enqueue_in(60, "tests.tasks:add", 1, 1)
        child = client.enqueue("tests.tasks:add", 2, 2, depends_on=[parent])
        assert client.cancel(parent.id) is True
        rec = client.wait(child.id, timeout=30)
        assert rec.status == "failed"
        assert rec.error.message == f"dependency {parent.id} cancelled"
