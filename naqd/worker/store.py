"""Writes a worker must not lose (result records, dead letters) and the one read it
needs (a job's previous record), riding out a NATS restart or a leader election."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Protocol

from loguru import logger
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import NoStreamResponseError, NotFoundError, ServiceUnavailableError

from naqd.protocol.envelope import ResultRecord, decode_result
from naqd.protocol.names import RESULTS_BUCKET, kv_stream, result_subject

RETRYABLE = (
    NatsTimeoutError,
    asyncio.TimeoutError,
    NoStreamResponseError,
    NoRespondersError,
    ServiceUnavailableError,
)


WRITE_TIMEOUT = 2.0  # seconds for one write's PubAck before it is tried again
RETRY_FIRST = 0.1  # seconds before the first retry (doubling up to 2 s)


class Publisher(Protocol):
    """`js.publish` or a StreamWriter (transport/streamwriter.py): same arguments and errors."""

    async def publish(
        self,
        subject: str,
        payload: bytes,
        *,
        headers: dict[str, str] | None = ...,
        timeout: float = ...,
    ) -> Any: ...


async def reliable_publish(
    js: Publisher | JetStreamContext,
    subject: str,
    data: bytes,
    headers: dict[str, str] | None = None,
    deadline: float = 30.0,
) -> None:
    """A stream write retried until `deadline` seconds pass; raises the last error after."""
    end = time.monotonic() + deadline
    delay = RETRY_FIRST
    while True:
        try:
            await js.publish(subject, data, headers=headers, timeout=WRITE_TIMEOUT)
            return
        except RETRYABLE as exc:
            if time.monotonic() + delay >= end:
                raise
            logger.debug("publish to {} failed ({}); retrying", subject, type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def read_record(js: JetStreamContext, job_id: str) -> ResultRecord | None:
    """The job's stored record, or None (never stored, expired, or unreadable)."""
    try:
        msg = await js.get_msg(
            kv_stream(RESULTS_BUCKET), subject=result_subject(job_id), direct=True
        )
    except NotFoundError:
        return None
    except Exception as exc:
        logger.warning("cannot read the record of job {}: {}", job_id, exc)
        return None
    if not msg.data:
        return None
    try:
        # Only status, attempts and errors matter here: never unpickle a stored result.
        d = json.loads(msg.data)
        d.update(result=None, encoding="json")
        return decode_result(json.dumps(d).encode())
    except Exception:
        return None
