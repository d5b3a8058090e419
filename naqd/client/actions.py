"""Operator actions, the one implementation behind both the web console and the CLI:
requeue and delete dead letters (one, or in bulk by filter with a dry run), cancel a
job, pause, resume and purge a queue, pause, resume and trigger a schedule. Each action
is recorded in the audit trail (naqd/client/audit.py) with who did it.

Errors: JobNotFound / DeadLetterNotFound (404), Conflict (409: another operator's
action won the race), QueueNotFound, ScheduleNotFound (404), ValueError (400),
Unavailable (503: NATS did not answer; not audited, as there is nowhere to write)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from naqd.client.audit import AuditLog, cli_actor
from naqd.client.errors import Conflict, ConnectError, JobNotFound, Unavailable, disconnected
from naqd.client.faults import guarded, translate_nats
from naqd.client.queues import QueueNotFound
from naqd.client.schedules import ScheduleNotFound
from naqd.protocol.audit import AuditEntry

if TYPE_CHECKING:
    from naqd.client.client import Client


@dataclass
class ActionResult:
    """What an action did. `count`: jobs touched (or, for a dry run, that would be);
    `ids`: the job ids (at most `SAMPLE` for a bulk action); `conflicts`: ids another
    operator took first (bulk requeue); `message`: one line for a person."""

    action: str
    target: str
    ok: bool = True
    dry_run: bool = False
    count: int = 0
    ids: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    message: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action, "target": self.target, "ok": self.ok,
            "dry_run": self.dry_run, "count": self.count, "ids": self.ids,
            "conflicts": self.conflicts, "message": self.message, "detail": self.detail,
        }  # fmt: skip


SAMPLE = 100  # ids listed in a bulk action's result and audit entry


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters a bulk action takes: every set field must match (queue, task
    and error type exactly; `reason` one of the dead-letter reasons). An empty filter
    matches every entry, so bulk actions require `all=True` for it."""

    queue: str | None = None
    task: str | None = None
    error_type: str | None = None
    reason: str | None = None
    all: bool = False

    def empty(self) -> bool:
        return not (self.queue or self.task or self.error_type or self.reason)

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in (
            ("queue", self.queue), ("task", self.task), ("error_type", self.error_type),
            ("reason", self.reason),
        ) if v]  # fmt: skip
        return ",".join(parts) or "all"


@guarded
class Actions:
    """`Actions(client, actor="alice", via="console")`; every method records an audit
    entry, also when it fails (result "not_found", "conflict" or "error")."""

    def __init__(self, client: Client, actor: str | None = None, via: str = "cli") -> None:
        self.client = client
        self.actor = actor or cli_actor()
        self.via = via
        self.audit = AuditLog(client.nc)

    async def _record(self, result: ActionResult, outcome: str = "ok") -> None:
        detail = {"count": result.count, **result.detail}
        if result.ids:
            detail["ids"] = result.ids[:SAMPLE]
        if result.conflicts:
            detail["conflicts"] = result.conflicts[:SAMPLE]
        if result.message:
            detail["message"] = result.message
        await self.audit.append(
            AuditEntry(
                actor=self.actor,
                action=result.action,
                target=result.target,
                result="dry_run" if result.dry_run and outcome == "ok" else outcome,
                detail=detail,
                via=self.via,
            )
        )

    async def _run(self, action: str, target: str, body: Any) -> ActionResult:
        """Run `body()` (an awaitable giving the ActionResult) and audit it, failures too."""
        if disconnected(self):
            with contextlib.suppress(Exception):
                body.close()  # never awaited: no "coroutine was never awaited" warning
            raise ConnectError("no connection to NATS (reconnecting): try again once it is back")
        try:
            result: ActionResult = await body
        except Exception as exc:
            outage = translate_nats(exc)
            if isinstance(outage, Unavailable):  # NATS away: nowhere to record it either
                raise outage from exc
            await self._record_failure(action, target, exc)
            raise
        await self._record(result)
        return result

    async def _record_failure(self, action: str, target: str, exc: Exception) -> None:
        if isinstance(exc, JobNotFound | QueueNotFound | ScheduleNotFound):
            outcome, message = "not_found", str(exc)
        elif isinstance(exc, Conflict):
            outcome, message = "conflict", str(exc)
        else:
            outcome, message = "error", f"{type(exc).__name__}: {exc}"
        await self._record(ActionResult(action, target, ok=False, message=message), outcome)

    # -- dead letters -----------------------------------------------------------------

    async def requeue_dead_letter(self, job_id: str) -> ActionResult:
        """Enqueue the job again (attempts from 1) and remove its entry. DeadLetterNotFound
        when there is no entry; Conflict when another requeue of the same entry won: the
        job is never enqueued twice (the requeue's Nats-Msg-Id derives from the entry)."""
        from naqd.client import dlqactions

        return await self._run("dlq.requeue", job_id, dlqactions.requeue_one(self.client, job_id))

    async def requeue_dead_letters(
        self, filter: DeadLetterFilter, *, dry_run: bool = False
    ) -> ActionResult:
        """Requeue every entry matching `filter`. With `dry_run`, only count them (and
        list up to SAMPLE ids). A filter that matches nothing does nothing and says so
        (count 0, message "no dead letters match ..."). ValueError for an empty filter
        without `all=True`."""
        from naqd.client import dlqactions

        return await self._run(
            "dlq.requeue_bulk", filter.describe(),
            dlqactions.requeue_many(self.client, filter, dry_run),
        )  # fmt: skip

    async def delete_dead_letter(self, job_id: str) -> ActionResult:
        """Remove one entry for good; DeadLetterNotFound if there is none."""
        from naqd.client import dlqactions

        return await self._run("dlq.delete", job_id, dlqactions.delete_one(self.client, job_id))

    async def delete_dead_letters(
        self, filter: DeadLetterFilter, *, dry_run: bool = False
    ) -> ActionResult:
        """Remove every entry matching `filter` (dry run: count them)."""
        from naqd.client import dlqactions

        return await self._run(
            "dlq.delete_bulk", filter.describe(),
            dlqactions.delete_many(self.client, filter, dry_run),
        )  # fmt: skip

    # -- jobs and queues --------------------------------------------------------------

    async def cancel_job(self, job_id: str) -> ActionResult:
        """Cancel a queued, delayed, waiting or running job. JobNotFound when no trace of
        the job exists; Conflict when it has already finished."""
        from naqd.client import dlqactions

        return await self._run("job.cancel", job_id, dlqactions.cancel(self.client, job_id))

    async def pause_queue(self, queue: str) -> ActionResult:
        """Workers everywhere stop taking jobs from `queue`; QueueNotFound if no worker
        ever created it."""

        async def go() -> ActionResult:
            await self.client.pause_queue(queue)
            return ActionResult("queue.pause", queue, message=f"paused {queue}")

        return await self._run("queue.pause", queue, go())

    async def resume_queue(self, queue: str) -> ActionResult:
        async def go() -> ActionResult:
            await self.client.resume_queue(queue)
            return ActionResult("queue.resume", queue, message=f"resumed {queue}")

        return await self._run("queue.resume", queue, go())

    async def purge_queue(self, queue: str) -> ActionResult:
        """Remove every waiting job of `queue` (all priority levels); running jobs
        finish. `count`: the jobs removed. QueueNotFound for an unknown queue."""
        from naqd.client import dlqactions

        return await self._run("queue.purge", queue, dlqactions.purge_queue(self.client, queue))

    # -- schedules --------------------------------------------------------------------

    async def pause_schedule(self, name: str) -> ActionResult:
        """YAML or code schedule; ScheduleNotFound if neither knows `name`."""

        async def go() -> ActionResult:
            await self.client.pause_schedule(name)
            return ActionResult("schedule.pause", name, message=f"paused {name}")

        return await self._run("schedule.pause", name, go())

    async def resume_schedule(self, name: str) -> ActionResult:
        async def go() -> ActionResult:
            await self.client.resume_schedule(name)
            return ActionResult("schedule.resume", name, message=f"resumed {name}")

        return await self._run("schedule.resume", name, go())

    async def trigger_schedule(self, name: str) -> ActionResult:
        """Run the schedule's job now, once (job id `cron.<name>.manual.<stamp>`, apart
        from every tick's). `ids`: that job id. Works for paused schedules too."""

        async def go() -> ActionResult:
            job_id = await self.client.trigger_schedule(name)
            return ActionResult("schedule.trigger", name, count=1, ids=[job_id], message=job_id)

        return await self._run("schedule.trigger", name, go())
