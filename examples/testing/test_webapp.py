"""Testing a FastAPI endpoint that enqueues (docs/testing.md#a-fastapi-endpoint): the
app's lifespan opens its client against the test's server, the in-process worker runs
the job, the endpoint reads the result."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from examples.testing.webapp import create_app
from naqd.testing import Worker

pytestmark = pytest.mark.asyncio


async def test_the_endpoint_enqueues_and_the_worker_runs_it(
    naqd_url: str, naqd_worker: Callable[..., Worker]
) -> None:
    async with naqd_worker(tasks=["examples.testing.shop"]) as worker:
        with TestClient(create_app(naqd_url)) as http:  # runs the lifespan
            accepted = http.post("/orders/total", json={"prices": [9.5, 0.5], "shipping": 4.99})
            assert accepted.status_code == 202
            job_id = accepted.json()["job"]
            await worker.drain(timeout=10)
            assert http.get(f"/jobs/{job_id}").json() == {"status": "succeeded", "result": 14.99}
