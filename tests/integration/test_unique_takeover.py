"""A unique lock whose job has already ended is stale: the next enqueue takes the key,
even when the worker has not deleted the lock yet (it does so after the done notice and
the ack, or never if it died in between)."""

from __future__ import annotations

import json

from naqd.client import Client
from naqd.client.unique_rules import lock_key
from naqd.models import Config, NatsConfig
from naqd.protocol.envelope import ResultRecord, encode_result
from naqd.protocol.names import RESULTS_BUCKET, UNIQUE_BUCKET
from naqd.protocol.resources import ensure_resources


async def test_a_lock_held_by_an_ended_job_is_taken_over(nats_server) -> None:
    config = Config(nats=NatsConfig(servers=(nats_server.url,)))
    async with Client(nats_server.url) as client:
        await ensure_resources(client._js, config)
        locks = await client._js.key_value(UNIQUE_BUCKET)
        results = await client._js.key_value(RESULTS_BUCKET)
        for status, taken_over in (("running", False), ("succeeded", True)):
            holder = f"holder-{status}"
            key = f"report-{status}"
            await locks.create(lock_key(key), json.dumps({"job_id": holder, "key": key}).encode())
            await results.put(holder, encode_result(ResultRecord(id=holder, status=status)))
            job = await client.enqueue("tests.tasks:add", 1, 2, unique_key=key)
            assert (job.id != holder) is taken_over, status
            owner = json.loads((await locks.get(lock_key(key))).value)["job_id"]
            assert owner == job.id
