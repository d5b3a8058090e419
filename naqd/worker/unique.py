"""A unique job's lock (docs/job-control.md#unique-jobs): freed by the worker once the
job has an outcome, so the next enqueue of the same key is accepted."""

from __future__ import annotations

from loguru import logger
from nats.js import JetStreamContext

from naqd.client.unique import release
from naqd.protocol.names import HDR_UNIQUE


async def release_unique(js: JetStreamContext, headers: dict[str, str] | None, job_id: str) -> None:
    lock = (headers or {}).get(HDR_UNIQUE)
    if not lock:
        return
    try:
        await release(js, lock, job_id)
    except Exception as exc:  # the lock's TTL frees it anyway
        logger.warning("job {}: releasing its unique lock failed: {}", job_id, exc)
