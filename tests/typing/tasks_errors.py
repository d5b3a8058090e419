"""Wrong calls that mypy --strict must reject: each line marked `# E: <code>` must get an
error with that code, and no other line may get one (check_typing.py)."""

from __future__ import annotations

import naqd
from naqd import Client, SyncClient


@naqd.task(queue="emails")
def add(a: int, b: int) -> int:
    return a + b


@naqd.task
async def fetch(url: str) -> bytes:
    return url.encode()


async def wrong_async(client: Client) -> None:
    await client.enqueue(add, 1, "2")  # E: call-overload
    await client.enqueue(add, 1)  # E: call-overload
    await client.enqueue(add, 1, 2, 3)  # E: call-overload
    await client.enqueue(add, 1, 2, queue="q")  # E: call-arg
    await client.enqueue(fetch, b"u")  # E: call-overload
    await client.enqueue_in(5, add, "1", 2)  # E: call-overload
    job = await client.enqueue(add, 1, 2)
    text: str = await job.result()  # E: assignment  # noqa: F841
    data: str = await (await client.enqueue(fetch, "u")).result()  # E: assignment  # noqa: F841
    add.using(queue=1)  # E: arg-type
    add.using(qeueu="q")  # E: call-arg


def wrong_sync(client: SyncClient) -> None:
    client.enqueue(add, "1", 2)  # E: call-overload
    client.enqueue(add, 1, 2, retries=3)  # E: call-arg
    text: str = client.enqueue(add, 1, 2).result()  # E: assignment  # noqa: F841


def wrong_direct() -> None:
    add("1", 2)  # E: arg-type
    text: str = add(1, 2)  # E: assignment  # noqa: F841
    fetch(1)  # E: arg-type


@naqd.task(retries="3")  # E: call-overload
def bad_options() -> None:
    pass
