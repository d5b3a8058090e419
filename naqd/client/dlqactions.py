"""The bodies of the actions in naqd/client/actions.py that need more than one client
call: dead-letter requeue and delete (one or by filter), cancel, purge a queue."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from nats.js.errors import NotFoundError

from naqd.client.actions import SAMPLE, ActionResult, DeadLetterFilter
from naqd.client.errors import Conflict, DeadLetterNotFound
from naqd.client.queues import QueueNotFound
from naqd.protocol.deadletter import DeadLetter
from naqd.protocol.envelope import validate_job_id, validate_queue
from naqd.protocol.names import JOBS_STREAM, consumer_name, job_subject, purge_subject, under

if TYPE_CHECKING:
    from naqd.client.client import Client


CANCEL_SCAN = 5.0  # s to look for a queued job without a record (~60k jobs)


def _matches(e: DeadLetter, f: DeadLetterFilter) -> bool:
    return (
        (not f.task or e.task == f.task)
        and (not f.error_type or e.error.type == f.error_type)
        and (not f.reason or e.reason == f.reason)
    )


def _check(f: DeadLetterFilter) -> None:
    if f.empty() and not f.all:
        raise ValueError("a bulk action needs a filter (queue, task, error_type, reason) or all")
    if f.queue:
        validate_queue(f.queue)


async def _matching(client: Client, f: DeadLetterFilter) -> list[DeadLetter]:
    return [e async for e in client.dead_letters.scan(f.queue) if _matches(e, f)]


async def requeue_one(client: Client, job_id: str) -> ActionResult:
    validate_job_id(job_id)
    entry = await client.dead_letters.requeue_id(job_id)
    return ActionResult(
        "dlq.requeue", job_id, count=1, ids=[job_id], message=f"requeued {job_id} to {entry.queue}"
    )


async def requeue_many(client: Client, f: DeadLetterFilter, dry_run: bool) -> ActionResult:
    async def requeue(e: DeadLetter, result: ActionResult) -> bool:
        try:
            await client.dead_letters.requeue(e)
        except Conflict:
            result.conflicts.append(e.id)
            return False
        return True

    result = await _bulk(client, f, dry_run, "dlq.requeue_bulk", "requeued", requeue)
    if result.conflicts:
        result.message += f", {len(result.conflicts)} taken by another requeue"
    return result


async def delete_one(client: Client, job_id: str) -> ActionResult:
    validate_job_id(job_id)
    await client.dead_letters.delete(job_id)
    return ActionResult("dlq.delete", job_id, count=1, ids=[job_id], message=f"deleted {job_id}")


async def delete_many(client: Client, f: DeadLetterFilter, dry_run: bool) -> ActionResult:
    async def delete(e: DeadLetter, result: ActionResult) -> bool:
        try:
            await client.dead_letters.delete(e.id)
        except DeadLetterNotFound:  # deleted by someone else meanwhile
            return False
        return True

    return await _bulk(client, f, dry_run, "dlq.delete_bulk", "deleted", delete)


async def _bulk(
    client: Client,
    f: DeadLetterFilter,
    dry_run: bool,
    action: str,
    verb: str,
    apply: Callable[[DeadLetter, ActionResult], Awaitable[bool]],
) -> ActionResult:
    """A bulk action by filter: a dry run counts, a real one applies `apply` to each match
    (False: skipped, not counted) and samples the ids it touched."""
    _check(f)
    entries = await _matching(client, f)
    result = ActionResult(action, f.describe(), dry_run=dry_run)
    if not entries:
        result.message = f"no dead letters match {f.describe()}: nothing {verb}"
        return result
    if dry_run:
        result.count = len(entries)
        result.ids = [e.id for e in entries[:SAMPLE]]
        result.message = f"{len(entries)} dead letter(s) would be {verb}"
        return result
    for e in entries:
        if await apply(e, result):
            result.count += 1
            if len(result.ids) < SAMPLE:
                result.ids.append(e.id)
    result.message = f"{verb} {result.count} dead letter(s)"
    return result


async def cancel(client: Client, job_id: str) -> ActionResult:
    """JobNotFound for an id with no trace; Conflict for a finished job."""
    validate_job_id(job_id)
    detail = await client.explorer.job_detail(job_id, scan_budget=CANCEL_SCAN)  # JobNotFound
    if detail.state in ("succeeded", "failed", "cancelled", "dead"):
        raise Conflict(f"job {job_id} has already finished ({detail.state})")
    if not await client.cancel(job_id):
        raise Conflict(f"job {job_id} has already finished")
    return ActionResult(
        "job.cancel", job_id, count=1, ids=[job_id], message=f"cancelled {job_id}",
        detail={"was": detail.state},
    )  # fmt: skip


async def purge_queue(client: Client, queue: str) -> ActionResult:
    """The queue's subject and its priority levels' (`naqd.jobs.<queue>.<level>`)."""
    validate_queue(queue)
    js = client._js
    subject = job_subject(queue)
    try:
        await js.consumer_info(JOBS_STREAM, consumer_name(queue))
    except NotFoundError:
        try:
            info = await js.stream_info(JOBS_STREAM, subjects_filter=subject)
            known = bool((info.state.subjects or {}).get(subject))
        except NotFoundError:
            known = False
        if not known:
            raise QueueNotFound(
                f"unknown queue {queue!r}: no consumer {consumer_name(queue)}"
            ) from None
    purged = 0
    for filt in (subject, under(subject)):
        # The raw API answers with the count; nats-py's purge_stream only says "success".
        req = json.dumps({"filter": filt}).encode()
        msg = await client.nc.request(purge_subject(JOBS_STREAM), req, timeout=10)
        resp = json.loads(msg.data)
        if "error" in resp:
            raise RuntimeError(f"purge failed: {resp['error'].get('description')}")
        purged += int(resp.get("purged", 0))
    return ActionResult(
        "queue.purge", queue, count=purged, message=f"purged {purged} job(s) from queue {queue}"
    )
