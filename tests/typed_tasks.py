"""Typed tasks (`@naqd.task`) the tests run in real workers: each declares a policy the
queue's YAML does not have."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import naqd


class InvalidAddress(ValueError):
    pass


def _count(directory: str) -> int:
    path = Path(directory) / "runs"
    with path.open("a") as f:
        f.write(f"{os.getpid()}\n")
    return len(path.read_text().splitlines())


@naqd.task(retries=3, backoff=[0.05], dont_retry_on=[InvalidAddress])
def send_email(directory: str, to: str, *, queue: str = "smtp") -> str:
    """Fails for an address without '@': never retried, by the task's own policy. Its own
    `queue` keyword is an argument, not the job's queue."""
    _count(directory)
    if "@" not in to:
        raise InvalidAddress(to)
    return f"{to} via {queue}"


@naqd.task(retries=2, backoff=[0.05])
def flaky(directory: str) -> int:
    """Fails until its third run: three attempts by the task's retries=2."""
    runs = _count(directory)
    if runs < 3:
        raise RuntimeError(f"run {runs}")
    return runs


@naqd.task(queue="typed")
async def double(n: int) -> int:
    await asyncio.sleep(0)
    return 2 * n


@naqd.task(result_ttl=0)
def fire_and_forget(n: int) -> int:
    return n


@naqd.task(unique_for=60, unique_mode="throttle")
def refresh_report(user_id: int) -> int:
    """At most once a minute per user, by the task's own unique policy."""
    return user_id
