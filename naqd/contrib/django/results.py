"""naqd's result records as Django `TaskResult`s (pure): statuses, times, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from naqd.contrib.django.compat import TaskError, TaskResult, TaskResultStatus
from naqd.protocol.envelope import ErrorInfo, ResultRecord

WORKER_TASK_PREFIX = "naqd.contrib.django.worker:"

# naqd's statuses (docs/client.md) as Django's; "retrying" waits for its next attempt,
# which Django calls READY ("ready to be executed again"); a cancel is a failure.
STATUS = {
    "queued": TaskResultStatus.READY,
    "running": TaskResultStatus.RUNNING,
    "retrying": TaskResultStatus.READY,
    "succeeded": TaskResultStatus.SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
    "cancelled": TaskResultStatus.FAILED,
}


def naqd_task_name(module_path: str) -> str:
    """The naqd task name a Django task travels under (naqd/contrib/django/worker.py)."""
    return WORKER_TASK_PREFIX + module_path


def django_task_path(naqd_task: str) -> str | None:
    if not naqd_task.startswith(WORKER_TASK_PREFIX):
        return None
    return naqd_task[len(WORKER_TASK_PREFIX) :]


def when(ts: float | None) -> datetime | None:
    """An epoch time as Django wants it: aware in UTC with USE_TZ, else naive local."""
    if not ts:
        return None
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment if settings.USE_TZ else timezone.make_naive(moment)


def exception_path(error: ErrorInfo) -> str:
    """naqd keeps the class name; the traceback's last line has its module
    (`myapp.errors.PaymentDeclined: ...`), except for builtins."""
    last = error.traceback.rstrip().rpartition("\n")[2]
    head = last.partition(":")[0].strip()
    if head == error.type or head.endswith("." + error.type):
        return head if "." in head else f"builtins.{head}"
    return f"builtins.{error.type}"


def task_error(error: ErrorInfo) -> Any:
    text = error.traceback or f"{error.type}: {error.message}"
    return TaskError(exception_class_path=exception_path(error), traceback=text)


def from_record(
    task: Any, rec: ResultRecord, backend: str, args: Any = (), kwargs: Any = None
) -> Any:
    """A TaskResult of `task` from naqd's record. The record holds no arguments: `args`
    and `kwargs` are what the caller knows (empty when it does not)."""
    errors = list(rec.errors)
    if rec.error is not None and rec.error not in errors:
        errors.append(rec.error)
    attempts = max(rec.attempts, 1 if rec.started_at else 0)
    result = TaskResult(
        task=task,
        id=rec.id,
        status=STATUS.get(rec.status, TaskResultStatus.READY),
        enqueued_at=when(rec.enqueued_at),
        started_at=when(rec.started_at),
        finished_at=when(rec.finished_at) if rec.done else None,
        last_attempted_at=when(rec.started_at),
        args=list(args),
        kwargs=dict(kwargs or {}),
        backend=backend,
        errors=[task_error(e) for e in errors],
        worker_ids=[rec.worker or "naqd"] * attempts,
    )
    if rec.status == "succeeded":
        object.__setattr__(result, "_return_value", rec.result)
    return result


def ready_result(task: Any, job_id: str, args: Any, kwargs: Any, backend: str) -> Any:
    """The result `enqueue` returns: READY, enqueued now."""
    return TaskResult(
        task=task,
        id=job_id,
        status=TaskResultStatus.READY,
        enqueued_at=timezone.now(),
        started_at=None,
        finished_at=None,
        last_attempted_at=None,
        args=list(args),
        kwargs=dict(kwargs),
        backend=backend,
        errors=[],
        worker_ids=[],
    )


def running_result(task: Any, job_id: str, attempt: int, args: Any, kwargs: Any) -> Any:
    """What a task that `takes_context` sees: RUNNING, `context.attempt` = naqd's attempt."""
    now = timezone.now()
    result = ready_result(task, job_id, args, kwargs, task.backend)
    object.__setattr__(result, "status", TaskResultStatus.RUNNING)
    object.__setattr__(result, "started_at", now)
    object.__setattr__(result, "last_attempted_at", now)
    object.__setattr__(result, "worker_ids", ["naqd"] * attempt)
    return result
