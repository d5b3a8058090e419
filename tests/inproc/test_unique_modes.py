"""The unique modes beyond "while queued or running" (docs/job-control.md#unique-jobs),
against a real nats-server and the in-process worker: throttle holds its key for the
window even after the job finished; debounce and latest replace a waiting job's
arguments (debounce also pushes back its start); a delayed job holds its key; enqueue
says whether it created the job."""

from __future__ import annotations

import time
from pathlib import Path

from naqd import SyncClient
from tests.natsserver import wait_until

BODY = """
tasks: {imports: [tests.tasks]}
queues: {default: {concurrency: 4, ack_wait: 5s}}
scheduler: {enabled: false}
shutdown: {grace_period: 5s}
"""


def runs(directory: Path) -> list[int]:
    return [int(n) for p in directory.glob("runs-*") for n in p.read_text().split()]


def test_throttle_holds_the_key_after_the_job_finished(
    worker_factory, nats_server, tmp_path: Path
) -> None:
    worker_factory(BODY)
    key = {"unique_key": "report-7", "unique_mode": "throttle", "unique_for": 2}
    with SyncClient(nats_server.url) as client:
        t0 = time.time()
        first = client.enqueue("tests.tasks:record", str(tmp_path), 1, **key)
        assert first.created
        assert first.result(timeout=20) == 1
        # Finished, yet within the window: the same job, not a new run.
        again = client.enqueue("tests.tasks:record", str(tmp_path), 2, **key)
        assert (again.id, again.created) == (first.id, False)

        def new_job():
            job = client.enqueue("tests.tasks:record", str(tmp_path), 3, **key)
            return job if job.created else None

        third = wait_until(new_job, 10, interval=0.1, what="the window to end")
        assert time.time() - t0 >= 2.0  # counted from the first enqueue, never shorter
        assert third.result(timeout=20) == 3
    assert sorted(runs(tmp_path)) == [1, 3]


def test_until_done_frees_the_key_when_the_job_ends(
    worker_factory, nats_server, tmp_path: Path
) -> None:
    worker_factory(BODY)
    with SyncClient(nats_server.url) as client:
        first = client.enqueue("tests.tasks:record", str(tmp_path), 1, unique_key="u")
        assert first.created and first.result(timeout=20) == 1
        second = client.enqueue("tests.tasks:record", str(tmp_path), 2, unique_key="u")
        assert second.created and second.id != first.id


def test_debounce_pushes_back_and_latest_keeps_the_start(
    worker_factory, nats_server, tmp_path: Path
) -> None:
    """Both run once, with the last enqueue's arguments. The second enqueue comes 2 s
    after the first, with a 4 s window: debounce starts 4 s after it (>= t0 + 6 s),
    latest keeps the first start (t0 + 4 s, rounded up to a whole second: < t0 + 6)."""
    worker_factory(BODY)
    task, d = "tests.tasks:record", str(tmp_path)
    with SyncClient(nats_server.url) as client:
        t0 = time.time()
        deb = client.enqueue(task, d, 1, unique_key="deb", unique_mode="debounce", unique_for=4)
        lat = client.enqueue(task, d, 10, unique_key="lat", unique_mode="latest", unique_for=4)
        assert deb.created and lat.created
        time.sleep(2.0)  # the time between two user actions, not a synchronization
        t1 = time.time()
        deb2 = client.enqueue(task, d, 2, unique_key="deb", unique_mode="debounce", unique_for=4)
        lat2 = client.enqueue(task, d, 20, unique_key="lat", unique_mode="latest", unique_for=4)
        assert (deb2.id, deb2.created) == (deb.id, False)
        assert (lat2.id, lat2.created) == (lat.id, False)
        assert [d.id for d in client.delayed()] == [lat.id, deb.id]  # latest runs first

        assert lat.result(timeout=20) == 20
        assert deb.result(timeout=20) == 2
        deb_started = client.record(deb.id).started_at
        lat_started = client.record(lat.id).started_at
        assert deb_started >= t1 + 4.0
        assert t0 + 4.0 <= lat_started < t1 + 4.0
        # It started: the next enqueue with the key makes a new waiting job.
        deb3 = client.enqueue(task, d, 3, unique_key="deb", unique_mode="debounce", unique_for=4)
        assert deb3.created and deb3.id != deb.id
        # Cancelled while it waited: the next enqueue makes a new job, not a cancelled one.
        assert client.cancel(deb3.id)
        deb4 = client.enqueue(task, d, 4, unique_key="deb", unique_mode="debounce", unique_for=4)
        assert deb4.created and deb4.id != deb3.id
        client.cancel(deb4.id)
    assert sorted(runs(tmp_path)) == [2, 20]


def test_a_delayed_unique_job_holds_its_key_until_it_ran(
    worker_factory, nats_server, tmp_path: Path
) -> None:
    worker_factory(BODY)
    with SyncClient(nats_server.url) as client:
        held = client.enqueue_in(1, "tests.tasks:record", str(tmp_path), 1, unique_key="later")
        assert held.created
        same = client.enqueue("tests.tasks:record", str(tmp_path), 2, unique_key="later")
        assert (same.id, same.created) == (held.id, False)
        assert held.result(timeout=20) == 1
        # The worker freed the key when the job ended (the lock travelled with the job).
        after = client.enqueue("tests.tasks:record", str(tmp_path), 3, unique_key="later")
        assert after.created and after.result(timeout=20) == 3
    assert sorted(runs(tmp_path)) == [1, 3]


def test_twenty_concurrent_debounced_enqueues_make_one_job(
    worker_factory, nats_server, tmp_path: Path
) -> None:
    """Racing replacements (compare-and-set on the lock, retried) leave one waiting job
    with the arguments of one of the calls; it runs once."""
    import asyncio

    from naqd import Client

    worker_factory(BODY)

    async def go() -> list:
        async with Client(nats_server.url) as client:
            return await asyncio.gather(
                *(
                    client.enqueue(
                        "tests.tasks:record",
                        str(tmp_path),
                        n,
                        unique_key="race",
                        unique_mode="debounce",
                        unique_for=2,
                    )
                    for n in range(20)
                )
            )

    jobs = asyncio.run(go())
    assert len({j.id for j in jobs}) == 1
    assert sum(j.created for j in jobs) == 1
    with SyncClient(nats_server.url) as client:
        assert client.result(jobs[0].id, timeout=20) in range(20)
    assert len(runs(tmp_path)) == 1


def test_a_cancelled_job_frees_an_until_done_key_not_a_throttle_window(nats_server) -> None:
    from naqd.testing import prepare_sync

    prepare_sync(nats_server.url)  # no worker: the jobs stay delayed or queued
    with SyncClient(nats_server.url) as client:
        held = client.enqueue_in(60, "tests.tasks:add", 1, 2, unique_key="u")
        assert client.cancel(held.id)
        after = client.enqueue("tests.tasks:add", 1, 2, unique_key="u")
        assert after.created and after.id != held.id
        t = {"unique_key": "t", "unique_mode": "throttle", "unique_for": 60}
        first = client.enqueue("tests.tasks:add", 1, 2, **t)
        assert client.cancel(first.id)
        again = client.enqueue("tests.tasks:add", 1, 2, **t)
        assert (again.id, again.created) == (first.id, False)


def test_a_typed_task_declares_its_unique_mode(worker_factory, nats_server) -> None:
    from tests.typed_tasks import refresh_report

    worker_factory(BODY.replace("[tests.tasks]", "[tests.tasks, tests.typed_tasks]"))
    with SyncClient(nats_server.url) as client:
        first = client.enqueue(refresh_report, 7)
        assert first.created and first.result(timeout=20) == 7
        again = client.enqueue(refresh_report, 7)  # finished, but inside the window
        assert (again.id, again.created) == (first.id, False)
        other = client.enqueue(refresh_report, 8)  # the key is derived from the arguments
        assert other.created
        # .using() wins over the decorator: until_done frees the key once the job ended.
        freed = client.enqueue(refresh_report.using(unique_mode="until_done"), 9)
        assert freed.result(timeout=20) == 9
        assert client.enqueue(refresh_report.using(unique_mode="until_done"), 9).created
