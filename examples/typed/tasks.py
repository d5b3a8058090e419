"""The application's tasks: each declares its own policy, which holds however its jobs
are enqueued and however the worker is started (`naqd worker emails --import
examples.typed.tasks`, or `naqd run --config examples/typed/naq.yaml`)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import naqd


class InvalidAddress(ValueError):
    """Retrying cannot fix an address."""


@naqd.task(queue="emails", retries=3, backoff=[1, 5, 30], dont_retry_on=[InvalidAddress])
def send_email(to: str, subject: str, *, timeout: float = 10.0) -> bool:
    """`timeout` is the task's own argument (the SMTP timeout), never the job's option."""
    if "@" not in to:
        raise InvalidAddress(to)
    return True


@naqd.task(queue="reports", timeout=600, result_ttl=timedelta(days=1), unique_for=60)
async def build_report(user_id: int, month: str) -> int:
    """Returns the number of rows; the same report is queued at most once at a time."""
    await asyncio.sleep(0)
    return user_id * len(month)


@naqd.task
def add(a: int, b: int) -> int:
    return a + b
