"""Testing the shop's tasks with naqd's pytest fixtures (docs/testing.md): a real
nats-server per test (`naqd_server`) and the daemon's worker code in the test's own
event loop (`naqd_worker`). Needs pytest-asyncio (or another async test runner)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from examples.testing.shop import charge, pack
from naqd import Client, JobCancelled, JobFailed
from naqd.testing import Worker, job_context, prepare

QUEUES = {
    # Short retry delays keep the test fast; PaymentDeclined is never retried.
    "default": {"retries": 2, "backoff": [0.1], "dont_retry_on": ["PaymentDeclined"]},
}


@pytest.mark.asyncio
async def test_order_total(naqd_url: str, naqd_worker: Callable[..., Worker]) -> None:
    async with (
        naqd_worker(tasks=["examples.testing.shop"], queues=QUEUES) as worker,
        Client(naqd_url) as client,
    ):
        job = await client.enqueue("examples.testing.shop:order_total", [9.5, 0.5], 4.99)
        await worker.drain(timeout=10)  # nothing queued or running any more
        assert await job.result(timeout=1) == 14.99


@pytest.mark.asyncio
async def test_a_flaky_gateway_is_retried(
    naqd_url: str, naqd_worker: Callable[..., Worker]
) -> None:
    async with (
        naqd_worker(tasks=["examples.testing.shop"], queues=QUEUES) as worker,
        Client(naqd_url) as client,
    ):
        job = await client.enqueue("examples.testing.shop:charge", "A-1", fail_first=2)
        await worker.drain(timeout=10)  # waits through the retry delays too
        assert await job.result(timeout=1) == "charged A-1"
        record = await client.record(job.id)
        assert record is not None and record.attempts == 3
        assert [e.type for e in record.errors] == ["ConnectionError", "ConnectionError"]


@pytest.mark.asyncio
async def test_a_declined_card_is_dead_lettered(
    naqd_url: str, naqd_worker: Callable[..., Worker]
) -> None:
    async with (
        naqd_worker(tasks=["examples.testing.shop"], queues=QUEUES) as worker,
        Client(naqd_url) as client,
    ):
        job = await client.enqueue("examples.testing.shop:charge_card", "A-2", "0000 1111")
        await worker.drain(timeout=10)
        with pytest.raises(JobFailed) as failure:
            await job.result(timeout=1)
        assert failure.value.error_type == "PaymentDeclined"
        entry = await client.dead_letters.get(job.id)
        assert entry is not None and entry.reason == "failed" and entry.attempts == 1


@pytest.mark.asyncio
async def test_enqueue_before_any_worker_started(
    naqd_url: str, naqd_worker: Callable[..., Worker]
) -> None:
    # A unique job needs the naqd_unique bucket, which a worker creates at its start:
    # prepare() creates every stream and bucket first, as `naqd init` does.
    await prepare(naqd_url, queues=QUEUES)
    async with Client(naqd_url) as client:
        job = await client.enqueue("examples.testing.shop:order_total", [1.0], unique_key="o-4")
        async with naqd_worker(tasks=["examples.testing.shop"], queues=QUEUES) as worker:
            await worker.drain(timeout=10)
        assert await job.result(timeout=1) == 1.0


# Calling tasks directly: no server, no worker. job_context() makes naqd.current_job()
# answer as in a worker, records progress and can request a cancel.


def test_charge_as_its_third_attempt() -> None:
    with job_context(attempt=2), pytest.raises(ConnectionError):
        charge("A-3", fail_first=2)
    with job_context(attempt=3):
        assert charge("A-3", fail_first=2) == "charged A-3"


def test_pack_reports_progress_and_stops_when_cancelled() -> None:
    with job_context(task="examples.testing.shop:pack") as job:
        assert pack(["cup", "plate"]) == 2
    assert job.progress_reports == [(0.5, "packed 1 of 2"), (1.0, "packed 2 of 2")]
    with job_context() as job:
        job.cancel()
        with pytest.raises(JobCancelled):
            pack(["cup"])
