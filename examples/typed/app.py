"""The producer side: enqueue through the task objects. mypy checks the arguments
against each task and infers each result's type."""

from __future__ import annotations

import asyncio

from examples.typed.tasks import add, build_report, send_email
from naqd import Client, Job, SyncClient


async def main(url: str = "nats://127.0.0.1:4222") -> None:
    async with Client(url) as client:
        mail: Job[bool] = await client.enqueue(send_email, "ada@example.com", "Welcome")
        report = await client.enqueue(build_report, 42, "2026-12")
        rows: int = await report.result(timeout=60)
        # Per-enqueue options go through .using(): they win over the task's own.
        later = await client.enqueue(send_email.using(delay=30, retries=0), "bob@example.com", "Hi")
        print(mail.id, rows, later.id)


def from_a_thread(url: str = "nats://127.0.0.1:4222") -> int:
    with SyncClient(url) as client:
        total: int = client.enqueue(add, 2, 3).result(timeout=10)
        return total


if __name__ == "__main__":
    asyncio.run(main())
