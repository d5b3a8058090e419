"""Calling a task directly in a unit test, as if a worker ran it: `naqd.current_job()`
answers, progress is recorded instead of stored, and a cancel can be requested. No
server, no worker, no event loop needed (docs/testing.md#calling-a-task-directly)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

from naqd.protocol.envelope import Envelope, ResultRecord
from naqd.worker.context import JobContext, _current


class RecordedJob(JobContext):
    """The `JobContext` a task sees under `job_context()`, plus what it did:
    `progress_reports` (every `(fraction, message)` in order; a worker stores at most one
    per 0.2 s, the last one wins) and `cancel()` to make `cancelled` true and
    `raise_if_cancelled()` raise `JobCancelled`, as a real cancel request would."""

    def __init__(self, env: Envelope, attempt: int) -> None:
        # No loop and no publisher: a context without a publisher never touches its loop.
        base = ResultRecord(id=env.id, status="running", task=env.task, queue=env.queue)
        super().__init__(env, attempt, cast(asyncio.AbstractEventLoop, None), None, base)
        self.progress_reports: list[tuple[float, str]] = []

    def progress(self, fraction: float, message: str = "") -> None:
        super().progress(fraction, message)  # the same checks (TypeError, ValueError)
        self.progress_reports.append((float(fraction), str(message)))

    @property
    def last_progress(self) -> tuple[float, str] | None:
        """What `client.status()` would show once the worker stored it."""
        return self.progress_reports[-1] if self.progress_reports else None

    def cancel(self) -> None:
        """Request a cancel, as `client.cancel(job_id)` does for a running job."""
        self.request_cancel()


@contextmanager
def job_context(
    *,
    job_id: str | None = None,
    task: str = "",
    queue: str = "default",
    attempt: int = 1,
) -> Iterator[RecordedJob]:
    """`with job_context() as job: my_task(1, 2)`: inside the block `naqd.current_job()`
    returns `job` (in coroutines awaited there and threads started with
    `contextvars.copy_context()` too); after it, `current_job()` raises again."""
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt!r}")
    env = Envelope(
        id=job_id or uuid.uuid4().hex,
        task=task,
        queue=queue,
        enqueued_at=time.time(),
    )
    job = RecordedJob(env, attempt)
    token = _current.set(job)
    try:
        yield job
    finally:
        job.close()
        _current.reset(token)
