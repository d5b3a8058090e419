"""Typed tasks as mypy --strict sees them: every line here must type-check, and each
assert_type pins an inferred type (run by `make lint`, see check_typing.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, assert_type

import naqd
from naqd import AsyncTask, Client, Job, SyncClient, SyncJob, SyncTask, Task


class InvalidAddress(Exception):
    pass


@naqd.task
def add(a: int, b: int) -> int:
    return a + b


@naqd.task(queue="emails", retries=3, dont_retry_on=[InvalidAddress], timeout=30)
def send_email(to: str, subject: str, *, queue: str = "smtp", timeout: float = 5) -> bool:
    return bool(to and subject and queue and timeout)


@naqd.task(result_ttl=timedelta(hours=1), backoff={"strategy": "linear", "base": 2})
async def fetch(url: str, *, task: str = "get") -> bytes:
    return (url + task).encode()


def plain(a: int) -> str:
    return str(a)


# The decorator keeps the function's parameters and return type.
adder: SyncTask[[int, int], int] = add
fetcher: AsyncTask[[str], bytes] = fetch
assert_type(add(1, 2), int)  # called directly: runs here, now
assert_type(send_email("a@b.c", "hi", queue="q"), bool)  # the task's own `queue` kwarg


async def called_directly() -> None:
    assert_type(await fetch("https://example.com"), bytes)


async def with_async_client(client: Client) -> None:
    job = await client.enqueue(add, 1, 2)
    assert_type(job, Job[int])
    assert_type(await job.result(timeout=5), int)
    assert_type(await client.enqueue(fetch, "https://example.com", task="head"), Job[bytes])
    # The task's own `queue` and `timeout` keywords are its arguments, never options.
    mail = await client.enqueue(send_email, "a@b.c", "hi", queue="smtp2", timeout=1.0)
    assert_type(mail, Job[bool])
    # Options go through .using(); it keeps the task's type.
    urgent = send_email.using(queue="urgent", job_id="mail-1", retries=0, delay=5)
    same: SyncTask[[str, str], bool] = urgent
    assert_type(same("a@b.c", "hi"), bool)
    assert_type(await client.enqueue(urgent, "a@b.c", "hi"), Job[bool])
    at = datetime.now(UTC) + timedelta(minutes=5)
    assert_type(await client.enqueue(add.using(at=at, depends_on=[job]), 1, 2), Job[int])
    assert_type(await client.enqueue_in(5, add, 1, 2), Job[int])
    assert_type(await client.enqueue_at(at, fetch, "u"), Job[bytes])
    assert_type(await client.enqueue_many(add, [(1, 2), (3, 4)]), list[Job[int]])
    # Names and plain functions keep working, untyped, with options as keywords.
    assert_type(await client.enqueue("app.tasks:add", 1, 2, queue="q"), Job[Any])
    assert_type(await client.enqueue(plain, 1, queue="q", retries=2), Job[Any])
    assert_type(await client.enqueue_many("app.tasks:add", [(1, 2)], queue="q"), list[Job[Any]])


def with_sync_client(client: SyncClient) -> None:
    job = client.enqueue(add, 1, 2)
    assert_type(job, SyncJob[int])
    assert_type(job.result(timeout=5), int)
    assert_type(client.enqueue(fetch, "u"), SyncJob[bytes])
    assert_type(client.enqueue(send_email.using(queue="q"), "a@b.c", "hi"), SyncJob[bool])
    assert_type(client.enqueue_in(timedelta(seconds=5), add, 1, 2), SyncJob[int])
    assert_type(client.enqueue_many(add, [(1, 2)]), list[SyncJob[int]])
    assert_type(client.enqueue("app.tasks:add", 1, 2, queue="q"), SyncJob[Any])


def takes_any_int_task(t: Task[[int, int], int]) -> None:
    pass


takes_any_int_task(add)
