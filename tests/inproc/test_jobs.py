"""Enqueue -> worker -> result, against a real nats-server and the worker in-process."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from naqd import Client, JobFailed, SyncClient
from naqd.protocol.names import DLQ_STREAM, RESULTS_BUCKET, dlq_subject, done_subject
from tests.natsserver import NatsServer
from tests.schemas import assert_valid
from tests.workerthread import WorkerThread


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NatsServer, Path]]:
    tmp = tmp_path_factory.mktemp("stack")
    server = NatsServer(tmp / "nats").start()
    config = tmp / "naq.yaml"
    config.write_text(
        f"""
nats: {{servers: ["{server.url}"]}}
tasks: {{imports: [tests.tasks]}}
queues:
  default: {{concurrency: 8, processes: 1, retries: 0}}
  other: {{concurrency: 2, processes: 1, retries: 2}}
shutdown: {{grace_period: 5s}}
"""
    )
    worker = WorkerThread(config, server.url, tmp / "worker.log").start()
    yield server, tmp
    worker.stop()
    server.stop()


@pytest.fixture
def url(stack: tuple[NatsServer, Path]) -> str:
    return stack[0].url


async def test_async_and_sync_tasks_return_results(url: str) -> None:
    async with Client(url) as client:
        job = await client.enqueue("tests.tasks:add", 1, 2)
        assert await job.result(timeout=10) == 3
        job2 = await client.enqueue("tests.tasks:async_add", 5, 6, queue="other")
        assert await client.result(job2.id, timeout=10) == 11
        assert await client.status(job.id) == "succeeded"
        rec = await client.record(job.id)
        assert rec is not None and rec.attempts == 1 and rec.task == "tests.tasks:add"


async def test_sync_jobs_see_their_own_job_in_reused_threads(url: str) -> None:
    # Pool threads are long-lived: each job must see its own context, never the last one.
    async with Client(url) as client:
        jobs = [await client.enqueue("tests.tasks:own_id", i % 3 * 0.01) for i in range(60)]
        results = await asyncio.gather(*(j.result(timeout=30) for j in jobs))
    assert results == [j.id for j in jobs]


async def test_callable_task_and_colliding_kwargs(url: str) -> None:
    from tests import tasks

    async with Client(url) as client:
        job = await client.enqueue(
            tasks.echo_kwargs, x=1, task_kwargs={"queue": "q-as-arg", "timeout": 3}
        )
        assert await job.result(timeout=10) == {"x": 1, "queue": "q-as-arg", "timeout": 3}


async def test_failure_carries_remote_traceback(url: str) -> None:
    async with Client(url) as client:
        job = await client.enqueue("tests.tasks:fail", "kaputt")
        with pytest.raises(JobFailed) as info:
            await job.result(timeout=10)
        assert info.value.error_type == "ValueError"
        assert info.value.message == "kaputt"
        assert "raise ValueError(message)" in info.value.traceback
        assert await job.status() == "failed"


async def test_unknown_task_fails_without_retry(url: str) -> None:
    async with Client(url) as client:
        job = await client.enqueue("tests.tasks:does_not_exist", queue="other")
        with pytest.raises(JobFailed) as info:
            await job.result(timeout=10)
        assert info.value.error_type == "TaskNotFound"
        rec = await client.record(job.id)
        assert rec is not None and rec.attempts == 1


async def test_retries_then_fails(url: str) -> None:
    async with Client(url) as client:
        job = await client.enqueue("tests.tasks:fail", "again", queue="other", retries=1)
        with pytest.raises(JobFailed):
            await job.result(timeout=15)
        rec = await client.record(job.id)
        assert rec is not None and rec.attempts == 2


async def test_same_job_id_runs_once(url: str, tmp_path: Path) -> None:
    job_id = f"once-{uuid.uuid4().hex}"
    async with Client(url) as client:
        first = await client.enqueue("tests.tasks:count_run", str(tmp_path), job_id=job_id)
        second = await client.enqueue("tests.tasks:count_run", str(tmp_path), job_id=job_id)
        assert first.id == second.id == job_id
        await first.result(timeout=10)
        # A marker job enqueued after both, on the same single-consumer queue, has run:
        marker = await client.enqueue("tests.tasks:add", 0, 0)
        await marker.result(timeout=10)
    assert (tmp_path / "runs").read_text().count("\n") == 1


async def test_result_ttl_expires(url: str) -> None:
    async with Client(url) as client:
        job = await client.enqueue("tests.tasks:add", 2, 3, result_ttl=1)
        assert await job.result(timeout=10) == 5
        deadline = time.monotonic() + 5
        while await client.record(job.id) is not None:
            assert time.monotonic() < deadline, "result did not expire"
            await asyncio.sleep(0.1)
        assert await client.status(job.id) == "queued"


async def test_result_timeout(url: str) -> None:
    async with Client(url) as client:
        with pytest.raises(TimeoutError):
            await client.result("never-enqueued", timeout=0.3)


async def test_not_json_serializable_args_rejected(url: str) -> None:
    async with Client(url) as client:
        with pytest.raises(TypeError, match=r"args\[0\]: a object value, which JSON cannot carry"):
            await client.enqueue("tests.tasks:add", object(), 1)


def test_sync_client_thousand_calls_one_connection(url: str) -> None:
    with SyncClient(url) as client:
        nc = client._client.nc
        jobs = [client.enqueue("tests.tasks:add", i, 1) for i in range(1000)]
        assert [j.result(timeout=30) for j in jobs[-5:]] == [996, 997, 998, 999, 1000]
        assert client._client.nc is nc and nc.stats["reconnects"] == 0


def test_sync_client_inside_running_loop(url: str) -> None:
    """SyncClient called from a thread while an event loop runs elsewhere."""

    async def app() -> int:
        with SyncClient(url) as client:
            return await asyncio.to_thread(
                lambda: client.enqueue("tests.tasks:add", 2, 2).result(10)
            )

    assert asyncio.run(app()) == 4
    out: list[int] = []
    t = threading.Thread(target=lambda: out.append(asyncio.run(app())))
    t.start()
    t.join(30)
    assert out == [4]


async def test_enqueue_many_pipelined(url: str) -> None:
    async with Client(url) as client:
        jobs = await client.enqueue_many("tests.tasks:add", [(i, i) for i in range(300)])
        assert len({j.id for j in jobs}) == 300
        assert [await j.result(timeout=20) for j in jobs[::50]] == [0, 100, 200, 300, 400, 500]


async def test_raw_job_with_invalid_id_is_dropped_not_redelivered(url: str) -> None:
    """A hand-made job whose id cannot be a KV key must not loop forever."""
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    bad = b'{"v":1,"id":"has space","task":"tests.tasks:add","queue":"default","args":[1,1]}'
    await js.publish("naqd.jobs.default", bad)
    deadline = time.monotonic() + 10
    while True:
        info = await js.consumer_info("NAQD_JOBS", "q-default")
        if info.num_pending == 0 and info.num_ack_pending == 0:
            break
        assert time.monotonic() < deadline, "bad job still pending"
        await asyncio.sleep(0.05)
    await nc.close()
    async with Client(url) as client:
        assert await (await client.enqueue("tests.tasks:add", 1, 1)).result(timeout=10) == 2


async def test_client_rejects_bad_names_before_publishing(url: str) -> None:
    async with Client(url) as client:
        with pytest.raises(ValueError, match="invalid task name"):
            await client.enqueue("add", 1, 2)
        with pytest.raises(ValueError, match="invalid queue name"):
            await client.enqueue("tests.tasks:add", 1, 2, queue="a.b")
        with pytest.raises(ValueError, match="invalid job_id"):
            await client.enqueue("tests.tasks:add", 1, 2, job_id=".lead")


async def test_connect_to_unreachable_server_fails_fast() -> None:
    from naqd import ConnectError
    from tests.natsserver import free_port

    with pytest.raises(ConnectError, match="cannot connect"):
        async with Client(f"nats://127.0.0.1:{free_port()}", connect_deadline=1):
            pass


async def test_unserializable_return_value_fails_the_job(url: str) -> None:
    """The task ran, but its result cannot be stored: `failed` with a TypeError and a
    dead-letter entry, never `succeeded` with null; and not retried (queue `other` has
    retries), since running it again would return the same value."""
    from naqd.client.deadletters import DeadLetters

    async with Client(url) as client:
        job = await client.enqueue("tests.tasks:unserializable", queue="other")
        with pytest.raises(JobFailed) as info:
            await job.result(timeout=10)
        assert info.value.error_type == "TypeError"
        rec = await client.record(job.id)
        assert rec is not None and rec.status == "failed" and rec.result is None
        assert rec.attempts == 1
        entry = await DeadLetters(client.nc).get(job.id)
        assert entry is not None and entry.reason == "failed" and entry.error.type == "TypeError"


async def test_result_ttl_zero_stores_nothing_but_announces_the_outcome(
    url: str, tmp_path: Path
) -> None:
    """`result_ttl: 0`: no record, but the done notice carries the final record, so a
    producer waiting on naqd.done.<id> (or on result()) learns the outcome."""
    import json

    from naqd.protocol.names import done_subject

    async with Client(url) as client:
        job = await client.enqueue("tests.tasks:block_until_released", str(tmp_path), result_ttl=0)
        notices: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_done(msg: object) -> None:
            await notices.put(msg.data)  # type: ignore[attr-defined]

        sub = await client.nc.subscribe(done_subject(job.id), cb=on_done)
        waiter = asyncio.ensure_future(job.result(timeout=20))
        deadline = time.monotonic() + 10
        while not (tmp_path / "started").exists():
            assert time.monotonic() < deadline, "job did not start"
            await asyncio.sleep(0.02)
        await client.nc.flush()  # our subscriptions (and the waiter's) reached the server
        (tmp_path / "release").touch()
        notice = json.loads(await asyncio.wait_for(notices.get(), 10))
        assert notice["status"] == "succeeded" and notice["result"] == "released"
        assert await waiter == "released"
        await sub.unsubscribe()
        assert await client.record(job.id) is None
        # A failure is announced too (subscribed before the enqueue: nothing is stored
        # to read afterwards).
        job_id = f"ttl0-{uuid.uuid4().hex}"
        sub = await client.nc.subscribe(done_subject(job_id), cb=on_done)
        await client.enqueue("tests.tasks:fail", "no record", result_ttl=0, job_id=job_id)
        notice = json.loads(await asyncio.wait_for(notices.get(), 10))
        assert notice["status"] == "failed" and notice["error"]["type"] == "ValueError"
        await sub.unsubscribe()
        assert await client.record(job_id) is None


async def test_records_and_dead_letters_written_by_workers_match_the_schemas(url: str) -> None:
    """docs/schemas/ is the contract: what a worker stores and announces validates."""
    async with Client(url) as client:
        kv = await client._js.key_value(RESULTS_BUCKET)
        done = await client.nc.subscribe(done_subject("schema-ok"), max_msgs=1)
        ok = await client.enqueue("tests.tasks:add", 1, 2, job_id="schema-ok")
        failed = await client.enqueue("tests.tasks:fail", "no", queue="other", retries=1,
                                      backoff=[0])  # fmt: skip
        assert await ok.result(timeout=10) == 3
        with pytest.raises(JobFailed):
            await failed.result(timeout=15)
        assert_valid("result", (await done.next_msg(timeout=10)).data)  # the done notice
        for job_id in (ok.id, failed.id):
            assert_valid("result", (await kv.get(job_id)).value)
        entry = await client._js.get_last_msg(DLQ_STREAM, dlq_subject("other", failed.id))
        assert_valid("deadletter", entry.data)
        assert json.loads(entry.data)["attempts"] == 2
