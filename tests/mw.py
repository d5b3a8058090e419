"""Middleware the tests load like a user's (naq.yaml `middleware:`, `Client(middleware=)`,
`naqd.testing.Worker(middleware=)`).

- `Audit` appends one JSON line per hook call to the file named by $NAQD_TEST_AUDIT
  (several processes may write it: each line is one small O_APPEND write), and tags
  every job it enqueues with an `X-Audited-By` header naming its process.
- `Recorder` keeps its calls in a list, for in-process tests.
- `Raising` raises in every hook, sync or async, to show a raising hook changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

from naqd.middleware import EnqueueMessage, JobInfo, Middleware

AUDIT_HEADER = "X-Audited-By"


def _job(job: JobInfo) -> dict[str, Any]:
    return {
        "id": job.id,
        "task": job.task,
        "queue": job.queue,
        "attempt": job.attempt,
        "headers": {k: v for k, v in job.headers.items() if not k.startswith("Nats-")},
        "worker": str(job.worker),
    }


class Recorder(Middleware):
    """Every call as (hook, job id, details)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    def of(self, job_id: str) -> list[str]:
        return [hook for hook, jid, _ in self.calls if jid == job_id]

    def detail(self, hook: str, job_id: str) -> Any:
        return next(d for h, jid, d in self.calls if h == hook and jid == job_id)

    def before_enqueue(self, message: EnqueueMessage) -> None:
        message.headers[AUDIT_HEADER] = f"recorder:{os.getpid()}"
        message.headers["Nats-Msg-Id"] = "overwritten"  # naqd's own: put back
        message.state["seen"] = True
        self.calls.append(("before_enqueue", message.job_id, dict(message.headers)))

    async def after_enqueue(self, message: EnqueueMessage, error: BaseException | None) -> None:
        self.calls.append(("after_enqueue", message.job_id, (error, message.state.get("seen"))))

    @contextlib.asynccontextmanager
    async def _around(self, job: JobInfo) -> AsyncIterator[None]:
        self.calls.append(("enter", job.id, _job(job)))
        job.state["entered"] = True
        try:
            yield
        except BaseException as exc:
            self.calls.append(("exit", job.id, type(exc).__name__))
            raise
        self.calls.append(("exit", job.id, None))

    def around_job(self, job: JobInfo) -> Any:
        return self._around(job)

    def on_success(self, job: JobInfo, result: Any) -> None:
        self.calls.append(("on_success", job.id, (result, job.state.get("entered"))))

    async def on_retry(self, job: JobInfo, exc: BaseException | None, delay: float) -> None:
        self.calls.append(("on_retry", job.id, (type(exc).__name__, delay, job.attempt)))

    def on_dead_letter(self, job: JobInfo, exc: BaseException | None, reason: str) -> None:
        self.calls.append(("on_dead_letter", job.id, (type(exc).__name__, reason, job.attempt)))

    def on_cancel(self, job: JobInfo) -> None:
        self.calls.append(("on_cancel", job.id, None))

    def on_timeout(self, job: JobInfo, exc: BaseException) -> None:
        self.calls.append(("on_timeout", job.id, type(exc).__name__))


class Raising:
    """Not a subclass: a middleware is any object. Every hook raises."""

    def before_enqueue(self, message: EnqueueMessage) -> None:
        message.headers["X-Half-Done"] = "1"
        raise RuntimeError("before_enqueue fails")

    async def after_enqueue(self, message: EnqueueMessage, error: BaseException | None) -> None:
        raise RuntimeError("after_enqueue fails")

    def around_job(self, job: JobInfo) -> Any:
        if job.task.endswith(":add"):
            raise RuntimeError("around_job fails before it returns")
        return _ExitFails()

    async def on_success(self, job: JobInfo, result: Any) -> None:
        raise RuntimeError("on_success fails")

    def on_retry(self, job: JobInfo, exc: BaseException | None, delay: float) -> None:
        raise SystemExit("on_retry exits")

    def on_dead_letter(self, job: JobInfo, exc: BaseException | None, reason: str) -> None:
        raise RuntimeError("on_dead_letter fails")

    def on_cancel(self, job: JobInfo) -> None:
        raise RuntimeError("on_cancel fails")

    def on_timeout(self, job: JobInfo, exc: BaseException) -> None:
        raise RuntimeError("on_timeout fails")


class _ExitFails:
    """Entered fine; raises on the way out, and would swallow the task's error if that
    were allowed (returning True): it is not."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        raise RuntimeError("around_job's exit fails")


class Audit(Middleware):
    """Every hook as a JSON line in $NAQD_TEST_AUDIT; jobs it enqueues are tagged."""

    def _write(self, hook: str, **fields: Any) -> None:
        line = json.dumps({"hook": hook, "pid": os.getpid(), **fields}, default=str) + "\n"
        fd = os.open(os.environ["NAQD_TEST_AUDIT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def before_enqueue(self, message: EnqueueMessage) -> None:
        message.headers[AUDIT_HEADER] = f"audit:{os.getpid()}"
        self._write("before_enqueue", job=message.job_id, task=message.task)

    def after_enqueue(self, message: EnqueueMessage, error: BaseException | None) -> None:
        self._write("after_enqueue", job=message.job_id, error=error)

    @contextlib.contextmanager
    def _around(self, job: JobInfo) -> Iterator[None]:
        self._write("enter", job=job.id, **_job(job))
        try:
            yield
        finally:
            self._write("exit", job=job.id)

    def around_job(self, job: JobInfo) -> Any:
        return self._around(job)

    def on_success(self, job: JobInfo, result: Any) -> None:
        self._write("on_success", job=job.id, result=result)

    def on_retry(self, job: JobInfo, exc: BaseException | None, delay: float) -> None:
        self._write("on_retry", job=job.id, attempt=job.attempt)

    def on_dead_letter(self, job: JobInfo, exc: BaseException | None, reason: str) -> None:
        self._write("on_dead_letter", job=job.id, reason=reason)

    def on_cancel(self, job: JobInfo) -> None:
        self._write("on_cancel", job=job.id)

    def on_timeout(self, job: JobInfo, exc: BaseException) -> None:
        self._write("on_timeout", job=job.id)

    def on_schedule_fire(self, schedule: Any, tick: Any, job_id: str) -> None:
        self._write("on_schedule_fire", job=job_id, schedule=schedule.name, tick=tick)

    def on_missed_tick(self, schedule: Any, tick: Any) -> None:
        self._write("on_missed_tick", schedule=schedule.name, tick=tick)
