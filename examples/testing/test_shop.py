"""Testing the shop's tasks with naqd's pytest fixtures (docs/testing.md): a real
nats-server per test (`naqd_server`) and the daemon's worker code in the test's own
event loop (`naqd_worker`). Needs pytest-asyncio (or another async test runner)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from naqd import Client, JobFailed
from naqd.client.deadletters import DeadLetters
from naqd.testing import Worker

pytestmark = pytest.mark.asyncio

QUEUES = {
    # Short retry delays keep the test fast; PaymentDeclined is never retried.
    "default": {"retries": 2, "backoff": [0.1], "dont_retry_on": ["PaymentDeclined"]},
}


async def test_order_total(naqd_url: str, naqd_worker: Callable[..., Worker]) -> None:
    async with (
        naqd_worker(tasks=["examples.testing.shop"], queues=QUEUES) as worker,
        Client(naqd_url) as client,
    ):
        job = await client.enqueue("examples.testing.shop:order_total", [9.5, 0.5], 4.99)
        await worker.drain(timeout=10)  # nothing queued or running any more
        assert await job.result(timeout=1) == 14.99


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
        entry = await DeadLetters(client.nc).get(job.id)
        assert entry is not None and entry.reason == "failed" and entry.attempts == 1
