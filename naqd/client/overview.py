"""The overview's reads: processes from the heartbeats bucket, queues from one consumer
listing plus a few reads each, schedules from the schedule bucket. Behind
naqd/client/explore.py."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from nats.js.errors import BucketNotFoundError, NotFoundError

from naqd.protocol.names import (
    DELAYED_SUBJECT_PREFIX,
    DEPENDENT_SUBJECT_PREFIX,
    HEARTBEATS_BUCKET,
    JOBS_STREAM,
    kv_stream,
    kv_subject,
    under,
)

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from naqd.client.explore import Explorer, HostRow, Overview, ProcessRow, ScheduleRow

CONSUMER_PREFIX = "q-"


async def processes(js: JetStreamContext) -> list[ProcessRow]:
    """Every live process's heartbeat: the bucket's subject list, then the last message
    of each by direct get (no consumer); delete markers of stopped processes skipped."""
    from naqd.client.explore import ProcessRow

    stream = kv_stream(HEARTBEATS_BUCKET)
    prefix = kv_subject(HEARTBEATS_BUCKET, "")
    try:
        info = await js.stream_info(stream, subjects_filter=f"{prefix}>")
    except NotFoundError:
        return []

    async def one(subject: str) -> ProcessRow | None:
        try:
            msg = await js.get_msg(stream, subject=subject, direct=True)
        except NotFoundError:  # expired between the two calls
            return None
        if (msg.headers or {}).get("KV-Operation") in ("DEL", "PURGE") or not msg.data:
            return None
        try:
            r = json.loads(msg.data)
        except ValueError:
            return None
        if not isinstance(r, dict):
            return None
        extra: dict[str, Any] = r["extra"] if isinstance(r.get("extra"), dict) else {}
        return ProcessRow(
            key=subject[len(prefix) :], host=str(r.get("host", "?")), pid=int(r.get("pid", 0)),
            role=str(r.get("role", "?")), queues=list(r.get("queues") or []),
            index=int(r.get("index", 0)), concurrency=int(r.get("concurrency", 0)),
            running=list(r.get("running") or []), done=int(r.get("done", 0)),
            failed=int(r.get("failed", 0)), done_per_min=float(r.get("done_per_min", 0.0)),
            failed_per_min=float(r.get("failed_per_min", 0.0)),
            memory_rss=r.get("memory_rss"), recycles=r.get("recycles"),
            queue_rates=dict(r.get("queue_rates") or {}),
            started_at=float(r.get("started_at", 0.0)),
            last_heartbeat=float(r.get("last_heartbeat", 0.0)),
            version=str(r.get("version", "")), leader=bool(extra.get("leader")), extra=extra,
        )  # fmt: skip

    rows = [r for r in await asyncio.gather(*map(one, info.state.subjects or {})) if r]
    rows.sort(key=lambda r: (r.host, r.role, r.queues, r.index, r.pid))
    return rows


def by_host(rows: list[ProcessRow]) -> list[HostRow]:
    from naqd.client.explore import HostRow

    hosts: dict[str, HostRow] = {}
    for r in rows:
        hosts.setdefault(r.host, HostRow(r.host)).processes.append(r)
    return [hosts[h] for h in sorted(hosts)]


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        head = text.replace("Z", "+00:00")
        if "." in head:
            main, rest = head.split(".", 1)
            frac, sign, zone = rest.partition("+")
            head = f"{main}.{frac[:6]}{sign}{zone}"
        return datetime.fromisoformat(head).timestamp()
    except ValueError:
        return None


async def _holders(js: JetStreamContext, prefix: str) -> dict[str, int]:
    """Holders per queue under `naqd.sched` or `naqd.deps` (a subject per job)."""
    try:
        info = await js.stream_info(JOBS_STREAM, subjects_filter=under(prefix))
    except NotFoundError:
        return {}
    counts: dict[str, int] = {}
    for subject in info.state.subjects or {}:
        queue = subject.split(".", 3)[2] if subject.count(".") >= 3 else ""
        counts[queue] = counts.get(queue, 0) + 1
    return counts


async def _oldest_age(js: JetStreamContext, c: Any, now: float) -> float:
    after = c.delivered.stream_seq if c.delivered else 0
    try:
        msg = await js.get_msg(JOBS_STREAM, after + 1, subject=c.config.filter_subject, next=True)
    except NotFoundError:
        return 0.0
    return max(0.0, now - msg.time.timestamp()) if msg.time else 0.0


async def overview(ex: Explorer) -> Overview:
    from naqd.client.explore import Overview, QueueRow

    js = ex.js
    now = time.time()

    async def consumers() -> list[Any]:
        try:
            return list(await js.consumers_info(JOBS_STREAM))
        except NotFoundError:
            return []

    procs, cons, delayed, waiting, dead = await asyncio.gather(
        processes(js), consumers(), _holders(js, DELAYED_SUBJECT_PREFIX),
        _holders(js, DEPENDENT_SUBJECT_PREFIX), ex.client.dead_letters.counts(),
    )  # fmt: skip
    rows: dict[str, QueueRow] = {}
    lags: list[tuple[QueueRow, Any]] = []
    for c in cons:
        if not c.name.startswith(CONSUMER_PREFIX):
            continue
        name = c.name[len(CONSUMER_PREFIX) :].split("~", 1)[0]
        row = rows.setdefault(name, QueueRow(name))
        row.queued += c.num_pending or 0
        row.running += c.num_ack_pending or 0
        paused = bool(getattr(c, "paused", False))
        row.paused = row.paused or paused
        if paused:
            row.paused_until = _parse_time(getattr(c.config, "pause_until", None))
        if c.num_pending:
            lags.append((row, c))
    for queue in {*delayed, *waiting, *dead}:
        rows.setdefault(queue, QueueRow(queue))
    ages = await asyncio.gather(*(_oldest_age(js, c, now) for _, c in lags))
    for (row, _), age in zip(lags, ages, strict=True):
        row.lag = max(row.lag, age)
    for name, row in rows.items():
        row.delayed = delayed.get(name, 0)
        row.waiting = waiting.get(name, 0)
        row.dead_letters = dead.get(name, 0)
        workers = [p for p in procs if p.role == "worker" and name in p.queues]
        row.processes = len(workers)
        row.concurrency = sum(p.concurrency for p in workers)
        row.done_per_min = round(sum(_rate(p, name, "done_per_min") for p in workers), 1)
        row.failed_per_min = round(sum(_rate(p, name, "failed_per_min") for p in workers), 1)
    leader = next((p for p in procs if p.role == "scheduler" and p.leader), None)
    return Overview(
        time=now, queues=[rows[k] for k in sorted(rows)], hosts=by_host(procs), leader=leader,
        dead_letters=sum(dead.values()), server=server(ex),
    )  # fmt: skip


def _rate(p: ProcessRow, queue: str, what: str) -> float:
    """A process's rate for one queue: its own per-queue figure (a pool), else the whole
    process's (a process serving one queue)."""
    per = p.queue_rates.get(queue)
    if per is not None:
        return float(per.get(what, 0.0))
    return float(getattr(p, what)) if len(p.queues) <= 1 else 0.0


def server(ex: Explorer) -> dict[str, Any]:
    nc = ex.client.nc
    info: dict[str, Any] = dict(getattr(nc, "_server_info", {}) or {})
    return {
        "connected": nc.is_connected,
        "connected_url": str(nc.connected_url.netloc) if nc.connected_url else None,
        "server_name": info.get("server_name"),
        "version": info.get("version"),
        "cluster": info.get("cluster"),
    }


async def schedules(js: JetStreamContext) -> list[ScheduleRow]:
    from naqd.client.explore import ScheduleRow
    from naqd.protocol.schedule_state import ScheduleState
    from naqd.protocol.ticks import Trigger

    state = ScheduleState(js)
    try:
        await state.kv()
    except BucketNotFoundError:
        return []
    now = datetime.now(UTC)
    entries = [(s, "yaml", now) for s in await state.yaml_schedules()]
    yaml_names = {s.name for s, _, _ in entries}
    entries += [
        (c.schedule, "code", max(now, c.since))
        for c in await state.code_list()
        if c.name not in yaml_names
    ]

    async def row(s: Any, origin: str, after: datetime) -> ScheduleRow:
        last, paused = await asyncio.gather(state.last_record(s.name), state.paused(s.name))
        try:
            nxt: float | None = Trigger.of(s).next_after(after).timestamp()
        except Exception:
            nxt = None
        return ScheduleRow(
            name=s.name, origin=origin, task=s.task, queue=s.queue,
            trigger=s.cron if s.cron else f"every {s.every:g}s", timezone=s.timezone,
            enabled=s.enabled, paused=paused, next_run=nxt if s.enabled else None,
            last_tick=last.get("tick") if last else None,
            last_job=(last.get("job_id") or None) if last else None,
            last_fired_at=last.get("fired_at") if last else None,
        )  # fmt: skip

    rows = await asyncio.gather(*(row(*e) for e in entries))
    return sorted(rows, key=lambda r: r.name)
