"""Jobs in every state, one job's detail and the id search, behind
naqd/client/explore.py. Where each state lives:

- queued: messages on `naqd.jobs.<queue>[.<level>]` in NAQD_JOBS (queue order);
- delayed / waiting: holders `naqd.sched.<queue>.<id>` / `naqd.deps.<queue>.<id>`;
- running: the workers' heartbeats (ids), and the `running` record;
- retrying, succeeded, failed, cancelled: the results bucket (KV_naqd_results);
- dead: the dead-letter stream, `naqd.dlq.<queue>.<id>`."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from nats.js.errors import NotFoundError

from naqd.client.errors import JobNotFound
from naqd.client.pages import SCAN_BUDGET, STOP, TIME_BUDGET, Page, Stop, parse_cursor, walk_back
from naqd.protocol.envelope import EnvelopeError, decode_job, validate_job_id
from naqd.protocol.names import (
    DELAYED_SUBJECT_PREFIX,
    DEPENDENT_SUBJECT_PREFIX,
    HDR_DEPENDS_ON,
    HDR_ENCODING,
    HDR_MSG_ID,
    HDR_SCHEDULE,
    JOBS_STREAM,
    JOBS_SUBJECT_PREFIX,
    RESULTS_BUCKET,
    job_subject,
    kv_stream,
    kv_subject,
    under,
)

if TYPE_CHECKING:
    from naqd.client.explore import Explorer, JobDetail, JobRow

STREAM_STATES = {"queued": JOBS_SUBJECT_PREFIX, "delayed": DELAYED_SUBJECT_PREFIX,
                 "waiting": DEPENDENT_SUBJECT_PREFIX}  # fmt: skip
RESULTS_STREAM = kv_stream(RESULTS_BUCKET)
RESULTS_PREFIX = kv_subject(RESULTS_BUCKET, "")


def stream_filter(state: str, queue: str | None) -> str:
    prefix = STREAM_STATES[state]
    if queue is None:
        return under(prefix)
    if state == "queued":
        return job_subject(queue)  # the default level; levels are `.<level>` below it
    return f"{prefix}.{queue}.>"


def msg_job_id(msg: Any) -> str:
    """The job id of a message in NAQD_JOBS: a holder's subject ends with it; a queued
    job's Nats-Msg-Id is it (or `<id>.requeue.<n>` for a requeued one)."""
    subject = msg.subject or ""
    if subject.startswith((DELAYED_SUBJECT_PREFIX + ".", DEPENDENT_SUBJECT_PREFIX + ".")):
        return subject.split(".", 3)[3]
    mid = str((msg.headers or {}).get(HDR_MSG_ID, ""))
    head, sep, _ = mid.partition(".requeue.")
    return head if sep else mid


def envelope_of(msg: Any) -> dict[str, Any] | None:
    headers = msg.headers or {}
    if headers.get(HDR_ENCODING, "json") != "json":
        return None
    try:
        return decode_job(msg.data or b"", "json").to_dict()
    except EnvelopeError:
        return None


def run_at_of(headers: dict[str, str]) -> float | None:
    from datetime import datetime

    text = headers.get(HDR_SCHEDULE, "").removeprefix("@at ").strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def stream_row(state: str, msg: Any) -> JobRow:
    from naqd.client.explore import JobRow

    env = envelope_of(msg) or {}
    queue = str(env.get("queue") or "")
    if not queue:
        parts = (msg.subject or "").split(".")
        queue = parts[2] if len(parts) > 2 else ""
    at: float | None = env.get("enqueued_at") or (msg.time.timestamp() if msg.time else None)
    if state == "delayed":
        at = run_at_of(msg.headers or {}) or at
    return JobRow(
        id=msg_job_id(msg), state=state, queue=queue, task=str(env.get("task", "")), at=at
    )


async def delivered(ex: Explorer) -> dict[str, int]:
    """Per queue subject, the last stream sequence its consumer delivered: a message at
    or below it is running, waiting out a retry's backoff, or held by a worker until a
    slot frees (then it has no `running` record yet and is still listed as queued)."""
    try:
        consumers = await ex.js.consumers_info(JOBS_STREAM)
    except NotFoundError:
        return {}
    return {
        c.config.filter_subject: int(c.delivered.stream_seq or 0)
        for c in consumers
        if c.config.filter_subject and c.delivered is not None
    }


def taken(floors: dict[str, int], msg: Any) -> bool:
    return int(msg.seq or 0) <= floors.get(msg.subject or "", 0)


def _in_time(at: float | None, since: float | None, until: float | None) -> bool:
    if at is None:
        return since is None and until is None
    return (since is None or at >= since) and (until is None or at <= until)


async def list_jobs(
    ex: Explorer,
    *,
    queue: str | None,
    state: str | None,
    task: str | None,
    since: float | None,
    until: float | None,
    q: str | None,
    cursor: str | None,
    limit: int,
) -> Page[JobRow]:
    from naqd.client.explore import JOB_STATES

    if state is not None and state not in JOB_STATES:
        raise ValueError(f"unknown state {state!r}; one of: {', '.join(JOB_STATES)}")
    limit = max(1, min(int(limit), 500))
    if q:
        found = [
            r for r in await find_jobs(ex, q, SCAN_BUDGET)
            if (state is None or r.state == state) and (queue is None or r.queue == queue)
            and (task is None or r.task == task) and _in_time(r.at, since, until)
        ]  # fmt: skip
        return Page(items=found[:limit], total=len(found))
    if state in STREAM_STATES:
        return await _stream_page(ex, state, queue, task, since, until, cursor, limit)
    if state == "running":
        return await _running_page(ex, queue, task, since, until, limit)
    if state == "dead":
        page = await ex.client.dead_letters.page(queue=queue, task=task, cursor=cursor, limit=limit)
        rows = [_dead_row(d) for d in page.items if _in_time(d.dead_at, since, until)]
        return Page(rows, page.cursor, page.scanned, page.partial, page.total)
    return await _results_page(ex, state, queue, task, since, until, cursor, limit)


def _dead_row(d: Any) -> JobRow:
    from naqd.client.explore import JobRow

    return JobRow(
        id=d.id, state="dead", queue=d.queue, task=d.task, at=d.dead_at, attempts=d.attempts,
        error=f"{d.error_type}: {d.error_message}", worker=d.worker,
    )  # fmt: skip


async def _stream_page(
    ex: Explorer, state: str, queue: str | None, task: str | None, since: float | None,
    until: float | None, cursor: str | None, limit: int,
) -> Page[JobRow]:  # fmt: skip
    """Oldest first, by sequence with `next` reads under the state's subject filter."""
    js = ex.js
    filt = stream_filter(state, queue)
    start = parse_cursor(cursor, "s") or 1
    page: Page[JobRow] = Page()
    deadline = time.monotonic() + TIME_BUDGET
    seq = start
    if state == "queued" and queue is not None and cursor is None:
        try:  # jobs already delivered are not waiting: start past them
            info = await js.consumer_info(JOBS_STREAM, f"q-{queue}")
            page.total = int(info.num_pending or 0)
            seq = max(seq, (info.delivered.stream_seq if info.delivered else 0) + 1)
        except NotFoundError:
            pass
    floors = await delivered(ex) if state == "queued" else {}
    filters = [filt] + ([under(job_subject(queue))] if state == "queued" and queue else [])
    for f in filters:
        s = seq
        while len(page.items) < limit:
            if page.scanned >= SCAN_BUDGET or time.monotonic() > deadline:
                page.partial = True
                page.cursor = f"s:{s}"
                return page
            try:
                msg = await js.get_msg(JOBS_STREAM, s, subject=f, next=True)
            except NotFoundError:
                break
            page.scanned += 1
            s = (msg.seq or s) + 1
            row = stream_row(state, msg)
            if floors and taken(floors, msg):
                # Delivered: running, unless it waits in a worker's prefetch for a slot.
                rec, _ = await ex.record(row.id)
                if rec is not None and rec.status in ("running", "retrying"):
                    continue
            if task and row.task != task:
                continue
            if not _in_time(row.at, since, until):
                continue
            page.items.append(row)
        if len(page.items) >= limit:
            page.cursor = f"s:{s}"
            return page
    return page


async def _running_page(
    ex: Explorer, queue: str | None, task: str | None, since: float | None,
    until: float | None, limit: int,
) -> Page[JobRow]:  # fmt: skip
    from naqd.client.explore import JobRow, row_of_record

    procs = await ex.workers()
    ids: list[tuple[str, str, str]] = []
    for p in procs:
        if p.role != "worker" or (queue and queue not in p.queues):
            continue
        ids += [(i, p.queues[0] if p.queues else "", f"{p.host}:{p.pid}") for i in p.running]
    records = await asyncio.gather(*(ex.record(i) for i, _, _ in ids))
    rows = []
    for (job_id, q, worker), (rec, _) in zip(ids, records, strict=True):
        row = row_of_record(rec) if rec else JobRow(job_id, "running", q, worker=worker)
        row.state = "running"
        row.worker = row.worker or worker
        if (task and row.task != task) or not _in_time(row.at, since, until):
            continue
        rows.append(row)
    rows.sort(key=lambda r: r.at or 0, reverse=True)
    return Page(items=rows[:limit], total=len(rows))


async def _results_page(
    ex: Explorer, state: str | None, queue: str | None, task: str | None,
    since: float | None, until: float | None, cursor: str | None, limit: int,
) -> Page[JobRow]:  # fmt: skip
    """Newest first, walking the results bucket's stream back by sequence."""
    from naqd.client.explore import record_of, row_of_record

    js = ex.js
    try:
        info = await js.stream_info(RESULTS_STREAM)
    except NotFoundError:
        return Page()
    first, last = info.state.first_seq, info.state.last_seq
    start = parse_cursor(cursor, "r")
    if start is not None:
        last = min(last, start)

    async def fetch(lo: int, hi: int) -> list[Any]:
        from naqd.client.batchget import fetch_range

        return await fetch_range(ex.client.nc, RESULTS_STREAM, f"{RESULTS_PREFIX}>", lo, hi)

    def keep(msg: Any) -> JobRow | Stop | None:
        if (msg.headers or {}).get("KV-Operation") or not msg.data:
            return None
        rec, _ = record_of(msg.data)
        if rec is None or rec.status == "queued":
            return None
        row = row_of_record(rec)
        written = msg.time.timestamp() if msg.time else row.at
        if since is not None and written is not None and written < since:
            return STOP  # the stream is in write order: nothing older matches
        if state is not None and rec.status != state:
            return None
        if (queue and rec.queue != queue) or (task and rec.task != task):
            return None
        if until is not None and (row.at or 0) > until:
            return None
        return row

    return await walk_back(fetch, first, last, keep, limit, "r")


# -- id search ---------------------------------------------------------------------------


async def find_jobs(ex: Explorer, prefix: str, limit: int) -> list[JobRow]:
    """Every source at once: the exact id (direct reads), the subjects that carry ids
    (dead letters, holders: one listing each), the result keys, and the queued ids
    (the console's index, or a short scan without one)."""
    from naqd.client.explore import JobRow, row_of_record

    prefix = prefix.strip()
    if not prefix:
        return []
    js = ex.js
    listings: list[tuple[str, str, str]] = [
        ("dead", "NAQD_DLQ", "naqd.dlq.>"),
        ("delayed", JOBS_STREAM, under(DELAYED_SUBJECT_PREFIX)),
        ("waiting", JOBS_STREAM, under(DEPENDENT_SUBJECT_PREFIX)),
    ]

    async def exact() -> JobRow | None:
        try:
            validate_job_id(prefix)
            d = await job_detail(ex, prefix, EXACT_SCAN)
        except (ValueError, JobNotFound):
            return None
        at = d.finished_at or d.started_at or d.enqueued_at
        error = f"{d.error_type}: {d.error_message}" if d.error_type else ""
        return JobRow(d.id, d.state, d.queue, d.task, at, len(d.attempts), error, d.worker)

    async def subjects(stream: str, filt: str) -> list[str]:
        try:
            info = await js.stream_info(stream, subjects_filter=filt)
        except NotFoundError:
            return []
        return [s for s in info.state.subjects or {} if s.split(".", 3)[-1].startswith(prefix)]

    async def queued() -> list[JobRow]:
        if ex.index is None:  # no index (the CLI): the queue's oldest jobs, briefly
            msgs = await _scan_prefix(ex, prefix, limit, EXACT_SCAN)
            return [stream_row("queued", m) for m in msgs]
        hits = ex.index.prefix(prefix, limit)
        got = await asyncio.gather(*(_get_seq(ex, seq) for _, seq in hits))
        rows = []
        for (job_id, _), msg in zip(hits, got, strict=True):
            if msg is None:
                ex.index.forget(job_id)
            else:
                rows.append(stream_row("queued", msg))
        return rows

    async def results() -> list[JobRow]:
        keys = [k[len(RESULTS_PREFIX) :] for k in await _result_keys(ex, prefix)][:limit]
        recs = await asyncio.gather(*(ex.record(k) for k in keys))
        return [row_of_record(rec) for rec, _ in recs if rec is not None]

    async def listed() -> list[JobRow]:
        lists = await asyncio.gather(*(subjects(stream, filt) for _, stream, filt in listings))
        rows = []
        for (kind, _, _), subs in zip(listings, lists, strict=True):
            for subject in subs:
                parts = subject.split(".", 3)
                rows.append(JobRow(parts[3], kind, parts[2]))
        return rows

    first, groups = await asyncio.gather(exact(), asyncio.gather(listed(), queued(), results()))
    found: dict[str, JobRow] = {}
    if first is not None:
        found[first.id] = first
    for rows in groups:
        for row in rows:
            found.setdefault(row.id, row)
    return list(found.values())[:limit]


async def _scan_prefix(ex: Explorer, prefix: str, limit: int, budget: float) -> list[Any]:
    from naqd.client.batchget import scan

    out: list[Any] = []
    if limit <= 0:
        return out
    deadline = time.monotonic() + budget
    messages = scan(ex.client.nc, JOBS_STREAM, under(JOBS_SUBJECT_PREFIX))
    try:
        async for msg in messages:
            if msg_job_id(msg).startswith(prefix):
                out.append(msg)
                if len(out) >= limit:
                    break
            if time.monotonic() > deadline:
                break
    finally:
        await messages.aclose()  # type: ignore[attr-defined]
    return out


async def _get_seq(ex: Explorer, seq: int) -> Any:
    try:
        return await ex.js.get_msg(JOBS_STREAM, seq)
    except NotFoundError:
        return None


EXACT_SCAN = 0.1  # s an exact id search reads the queue for an unindexed queued job
MAX_RESULT_KEYS = 200_000  # past this many results, a prefix search skips them (exact works)


async def _result_keys(ex: Explorer, prefix: str) -> list[str]:
    try:
        state = (await ex.js.stream_info(RESULTS_STREAM)).state
        if int(getattr(state, "num_subjects", 0) or 0) > MAX_RESULT_KEYS:
            return []
        info = await ex.js.stream_info(RESULTS_STREAM, subjects_filter=f"{RESULTS_PREFIX}>")
    except NotFoundError:
        return []
    start = RESULTS_PREFIX + prefix
    return [s for s in info.state.subjects or {} if s.startswith(start)]


# -- one job -----------------------------------------------------------------------------


async def _holder(ex: Explorer, prefix: str, job_id: str) -> Any:
    try:
        return await ex.js.get_msg(JOBS_STREAM, 1, subject=f"{prefix}.*.{job_id}", next=True)
    except NotFoundError:
        return None


async def job_detail(ex: Explorer, job_id: str, scan_budget: float = TIME_BUDGET) -> JobDetail:
    from naqd.client.explore import Attempt, DeadLetterRow, JobDetail, schedule_of

    validate_job_id(job_id)
    (rec, _raw), delayed, waiting, dead = await asyncio.gather(
        ex.record(job_id), _holder(ex, DELAYED_SUBJECT_PREFIX, job_id),
        _holder(ex, DEPENDENT_SUBJECT_PREFIX, job_id), ex.client.dead_letters.get(job_id),
    )  # fmt: skip
    queued = None
    if rec is None and delayed is None and waiting is None and dead is None:
        queued = await find_queued(ex, job_id, scan_budget)
        if queued is None:
            raise JobNotFound(job_id)
    elif rec is not None and not rec.done and delayed is None and waiting is None:
        queued = await find_queued(ex, job_id)  # its envelope, while it is in the stream
    held = delayed or waiting or queued
    d = JobDetail(id=job_id, state="queued")
    if held is not None:
        d.headers = dict(held.headers or {})
        d.encoding = d.headers.get(HDR_ENCODING, "json")
        d.envelope = envelope_of(held)
        d.stream_seq = held.seq
        parts = (held.subject or "").split(".")
        d.queue = parts[2] if len(parts) > 2 else ""
    if delayed is not None:
        d.state = "delayed"
        d.run_at = run_at_of(d.headers)
    if waiting is not None:
        d.state = "waiting"
        d.parents = [p for p in d.headers.get(HDR_DEPENDS_ON, "").split(",") if p]
    if dead is not None:
        d.dead_letter = DeadLetterRow.of(dead, full=True)
        d.queue, d.task = dead.queue, dead.task
        d.headers = d.headers or dict(dead.headers)
        if d.envelope is None:
            try:
                d.envelope = json.loads(dead.payload) if dead.payload else None
            except ValueError:
                d.envelope = None
    env = d.envelope if isinstance(d.envelope, dict) else {}
    if env:
        d.task = str(env.get("task", d.task))
        d.queue = str(env.get("queue", d.queue))
        d.args = list(env.get("args") or [])
        d.kwargs = dict(env.get("kwargs") or {})
        d.enqueued_at = env.get("enqueued_at")
        d.options = {
            k: env[k]
            for k in ("retries", "timeout", "result_ttl", "backoff", "retry_on", "dont_retry_on")
            if env.get(k) is not None
        }
    if rec is not None:
        d.state = rec.status if rec.status != "queued" else d.state
        d.queue, d.task = rec.queue or d.queue, rec.task or d.task
        d.enqueued_at = d.enqueued_at or rec.enqueued_at or None
        d.started_at, d.finished_at, d.worker = rec.started_at, rec.finished_at, rec.worker
        d.progress, d.progress_message = rec.progress, rec.progress_message
        if not env and rec.args is not None:  # left the stream; kept by results.keep_args
            d.args, d.kwargs = list(rec.args), dict(rec.kwargs or {})
        d.result = rec.result
        if rec.status == "succeeded":
            d.result_text = json.dumps(rec.result, indent=2, default=str, ensure_ascii=False)
        err = rec.error
        if err is not None:
            d.error_type, d.error_message, d.traceback = err.type, err.message, err.traceback
        for n, e in enumerate(rec.errors, 1):
            d.attempts.append(Attempt(n, "failed", e.worker, e.started_at, e.finished_at,
                                      e.type, e.message, e.traceback))  # fmt: skip
        if rec.status in ("running", "succeeded", "cancelled") or (
            rec.status == "failed" and len(rec.errors) < max(rec.attempts, 1)
        ):
            d.attempts.append(Attempt(len(d.attempts) + 1, rec.status))
        if d.attempts:
            last = d.attempts[-1]
            last.worker, last.started_at = rec.worker or last.worker, rec.started_at
            last.finished_at = rec.finished_at or last.finished_at
            if rec.status == "failed" and err is not None and not last.error_type:
                last.error_type, last.error_message, last.traceback = (
                    err.type,
                    err.message,
                    err.traceback,
                )
    if dead is not None and (rec is None or rec.status in ("failed", "queued")):
        d.state = "dead"
        if not d.attempts:
            for n, e in enumerate(dead.errors or (dead.error,), 1):
                d.attempts.append(Attempt(n, "failed", e.worker, e.started_at, e.finished_at,
                                          e.type, e.message, e.traceback))  # fmt: skip
            d.attempts[-1].worker = d.attempts[-1].worker or dead.worker
        if not d.error_type:
            d.error_type, d.error_message = dead.error.type, dead.error.message
            d.traceback = dead.error.traceback
    if queued is not None and rec is None:
        d.state = "queued"
    d.schedule, d.tick = schedule_of(job_id)
    d.dependents = await dependents(ex, job_id)
    return d


async def find_queued(ex: Explorer, job_id: str, budget: float = TIME_BUDGET) -> Any:
    """A job's message in its queue: the id index when the explorer has one, else the
    newest messages first under a time budget (there is no server index by Nats-Msg-Id)."""
    index = getattr(ex, "index", None)
    if index is not None:
        seq = await index.lookup(job_id)
        if seq is not None:
            try:
                return await ex.js.get_msg(JOBS_STREAM, seq)
            except NotFoundError:
                index.forget(job_id)
        if index.complete:
            return None
    from naqd.client.batchget import scan

    deadline = time.monotonic() + budget
    messages = scan(ex.client.nc, JOBS_STREAM, under(JOBS_SUBJECT_PREFIX))
    try:
        async for msg in messages:
            if msg_job_id(msg) == job_id:
                return msg
            if time.monotonic() > deadline:
                return None
    finally:
        await messages.aclose()  # type: ignore[attr-defined]
    return None


async def dependents(ex: Explorer, job_id: str, budget: int = 1000) -> list[str]:
    """Jobs waiting on `job_id`: holders whose Naqd-Depends-On names it (at most
    `budget` holders read)."""
    try:
        info = await ex.js.stream_info(JOBS_STREAM, subjects_filter=under(DEPENDENT_SUBJECT_PREFIX))
    except NotFoundError:
        return []
    found = []
    for subject in list(info.state.subjects or {})[:budget]:
        try:
            msg = await ex.js.get_msg(JOBS_STREAM, subject=subject)
        except NotFoundError:
            continue
        parents = (msg.headers or {}).get(HDR_DEPENDS_ON, "").split(",")
        if job_id in parents:
            found.append(subject.split(".", 3)[3])
    return found
