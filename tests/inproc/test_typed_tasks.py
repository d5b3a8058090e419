"""Typed tasks (`@naqd.task`) end to end, against a real nats-server and the worker
in-process: enqueued through the task object, by name and from the sync client, the
task's own policy holds over the queue's YAML, and the enqueue's own over both."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from naqd import Client, JobFailed, SyncClient
from naqd.protocol.names import SCHEDULES_BUCKET, done_subject
from tests import typed_tasks
from tests.natsserver import NatsServer
from tests.typed_tasks import InvalidAddress, double, fire_and_forget, flaky, send_email
from tests.workerthread import WorkerThread


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("typed")
    server = NatsServer(tmp / "nats").start()
    config = tmp / "naq.yaml"
    # The YAML's retries (5) and backoff (30 s) would make every test here slow: the
    # tasks' own options must win over them.
    config.write_text(
        f"""
nats: {{servers: ["{server.url}"]}}
tasks: {{imports: [tests.typed_tasks]}}
queues:
  default: {{concurrency: 4, processes: 1, retries: 5, backoff: [30]}}
  typed: {{concurrency: 2, processes: 1, retries: 0}}
"""
    )
    worker = WorkerThread(config, server.url, tmp / "worker.log").start()
    yield server.url
    worker.stop()
    server.stop()


async def test_through_the_task_object(url: str, tmp_path: Path) -> None:
    async with Client(url) as client:
        job = await client.enqueue(double, 21)  # the task's queue: "typed"
        assert await job.result(timeout=10) == 42
        rec = await client.record(job.id)
        assert rec is not None and rec.queue == "typed" and rec.task == double.name
        # Every keyword goes to the task, `queue` included; options go through using().
        mail = await client.enqueue(send_email.using(job_id="m-1"), str(tmp_path), "a@b", queue="x")
        assert mail.id == "m-1"
        assert await mail.result(timeout=10) == "a@b via x"


async def test_a_wrong_call_fails_at_enqueue(url: str) -> None:
    async with Client(url) as client:
        with pytest.raises(TypeError, match="missing a required argument"):
            await client.enqueue(send_email, "dir")  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="too many positional"):
            await client.enqueue("tests.typed_tasks:double", 1, 2)  # module loaded here


async def test_the_tasks_policy_holds_by_name_too(url: str, tmp_path: Path) -> None:
    """dont_retry_on and retries come from the decorator, over the queue's retries: 5."""
    async with Client(url) as client:
        for how, enqueue in (
            ("object", lambda d: client.enqueue(send_email, d, "no-at")),
            ("name", lambda d: client.enqueue("tests.typed_tasks:send_email", d, "no-at")),
        ):
            directory = tmp_path / how
            directory.mkdir()
            job = await enqueue(str(directory))
            with pytest.raises(JobFailed) as info:
                await job.result(timeout=10)
            assert info.value.error_type == InvalidAddress.__name__
            assert len((directory / "runs").read_text().splitlines()) == 1, how  # not retried
        job = await client.enqueue(flaky, str(tmp_path))  # retries=2, backoff 0.05 s
        assert await job.result(timeout=10) == 3


async def test_the_enqueues_own_options_win(url: str, tmp_path: Path) -> None:
    async with Client(url) as client:
        job = await client.enqueue(flaky.using(retries=0), str(tmp_path))
        with pytest.raises(JobFailed):
            await job.result(timeout=10)
        rec = await client.record(job.id)
        assert rec is not None and rec.attempts == 1
        # By name, option keywords are options: retries=1 over the task's 2.
        other = tmp_path / "by-name"
        other.mkdir()
        job = await client.enqueue("tests.typed_tasks:flaky", str(other), retries=1)
        with pytest.raises(JobFailed):
            await job.result(timeout=10)
        assert len((other / "runs").read_text().splitlines()) == 2


async def test_result_ttl_from_the_task(url: str) -> None:
    async with Client(url) as client:
        job_id = uuid.uuid4().hex
        done = await client.nc.subscribe(done_subject(job_id))  # before it can end
        await client.nc.flush()
        await client.enqueue(fire_and_forget.using(job_id=job_id), 7)
        await done.next_msg(timeout=10)  # announced...
        assert await client.record(job_id) is None  # ...but not stored: result_ttl=0


def test_sync_client(url: str, tmp_path: Path) -> None:
    with SyncClient(url) as client:
        job = client.enqueue(double, 5)
        assert job.result(timeout=10) == 10
        jobs = client.enqueue_many(double, [(1,), (2,)])
        assert [j.result(timeout=10) for j in jobs] == [2, 4]
        assert typed_tasks.send_email(str(tmp_path), "a@b") == "a@b via smtp"


async def test_a_schedule_of_a_task_object(url: str) -> None:
    async with Client(url) as client:
        await client.nc.jetstream().create_key_value(bucket=SCHEDULES_BUCKET)  # no scheduler
        with pytest.raises(TypeError, match="missing a required argument"):
            await client.schedule("typed-double", double, every=3600)
        info = await client.schedule("typed-double", double, 4, every=3600)
        assert (info.task, info.queue) == (double.name, "typed")  # the task's own queue
        await client.remove_schedule("typed-double")
