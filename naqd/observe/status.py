"""What `naqd status`, `naqd workers`, `naqd queues` and the status page show, gathered
from NATS: heartbeat records, consumer info, the dead-letter stream and server info. The
shapes are plain dicts so `--json` and the page get exactly what the tables print."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any
from zoneinfo import ZoneInfo

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import NoKeysError, NotFoundError

from naqd.models import Config
from naqd.protocol import names
from naqd.protocol.names import HDR_MSG_ID, HEARTBEATS_BUCKET, JOBS_STREAM, kv_stream, kv_subject

CONSUMER_PREFIX = names.consumer_name("")  # "q-"


async def workers(js: JetStreamContext) -> list[dict[str, Any]]:
    """Every live process's heartbeat record, across all hosts.

    Read from the bucket's stream directly (subject list, then the last message of each),
    which needs no consumer; delete markers of cleanly stopped processes are skipped."""
    stream = kv_stream(HEARTBEATS_BUCKET)
    prefix = kv_subject(HEARTBEATS_BUCKET, "")
    try:
        info = await js.stream_info(stream, subjects_filter=f"{prefix}>")
    except NotFoundError:
        return []
    records = []
    for subject in info.state.subjects or {}:
        try:
            msg = await js.get_msg(stream, subject=subject, direct=True)
        except NotFoundError:  # expired between the two calls
            continue
        if (msg.headers or {}).get("KV-Operation") in ("DEL", "PURGE") or not msg.data:
            continue
        try:
            rec = json.loads(msg.data)
        except ValueError:
            continue
        rec["key"] = subject[len(prefix) :]
        records.append(rec)
    records.sort(
        key=lambda r: (r.get("host", ""), r.get("role", ""), r.get("queues", []), r.get("index", 0))
    )
    return records


def leader(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The scheduler whose heartbeat says it leads (its `extra.leader`)."""
    for rec in records:
        extra = rec.get("extra") or {}
        if rec.get("role") == "scheduler" and extra.get("leader"):
            return {
                "host": rec.get("host"),
                "pid": rec.get("pid"),
                "since": extra.get("leader_since"),
            }
    return None


async def dead_letters(js: JetStreamContext, recent: int = 10) -> dict[str, Any]:
    """Dead-letter counts per queue and the newest entries (`available` is False until a
    daemon has created the dead-letter stream)."""
    stream = names.DLQ_STREAM
    empty: dict[str, Any] = {"available": False, "counts": {}, "recent": []}
    try:
        info = await js.stream_info(stream, subjects_filter=names.dlq_filter())
    except NotFoundError:
        return empty
    counts: dict[str, int] = {}
    for subject, n in (info.state.subjects or {}).items():
        queue = names.dlq_queue(subject)
        counts[queue] = counts.get(queue, 0) + n
    entries: list[dict[str, Any]] = []
    seq = info.state.last_seq
    while seq >= max(1, info.state.first_seq) and len(entries) < recent:
        try:
            msg = await js.get_msg(stream, seq)
        except NotFoundError:
            seq -= 1
            continue
        entries.append(_dead_entry(msg))
        seq -= 1
    return {"available": True, "counts": counts, "recent": entries}


def _dead_entry(msg: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "seq": msg.seq,
        "subject": msg.subject,
        "queue": names.dlq_queue(msg.subject),
    }
    if getattr(msg, "time", None):
        entry["time"] = str(msg.time)
    try:
        body = json.loads(msg.data or b"{}")
    except ValueError:
        body = {}
    if isinstance(body, dict):
        envelope = body.get("envelope") if isinstance(body.get("envelope"), dict) else body
        entry["id"] = body.get("id") or envelope.get("id")
        entry["task"] = body.get("task") or envelope.get("task")
        error = body.get("error") or body.get("reason")
        if isinstance(error, dict):
            error = f"{error.get('type', '')}: {error.get('message', '')}".strip(": ")
        entry["error"] = error
    headers = msg.headers or {}
    entry["id"] = entry.get("id") or headers.get(HDR_MSG_ID)
    return entry


def _empty_row(name: str) -> dict[str, Any]:
    return {
        "queue": name,
        "pending": 0,
        "in_flight": 0,
        "redelivered": 0,
        "waiting_pulls": 0,
        "paused": False,
    }


async def known_queues(js: JetStreamContext) -> list[str]:
    """The registered queue names (docs/client.md#known-queues); none without the bucket."""
    try:
        kv = await js.key_value(names.QUEUES_BUCKET)
        return list(await kv.keys())
    except (NotFoundError, NoKeysError):
        return []


async def unserved(js: JetStreamContext, consumed: set[str]) -> dict[str, int]:
    """Jobs per queue whose subject no consumer reads (`consumed`: the queues that have
    one), configured queues included."""
    try:
        info = await js.stream_info(
            JOBS_STREAM, subjects_filter=names.under(names.JOBS_SUBJECT_PREFIX)
        )
    except NotFoundError:
        return {}
    counts: dict[str, int] = {}
    for subject, n in (info.state.subjects or {}).items():
        queue = names.job_subject_queue(subject)
        if queue is not None and queue not in consumed:
            counts[queue] = counts.get(queue, 0) + int(n)
    return counts


async def queues(
    js: JetStreamContext, config: Config | None, records: list[dict[str, Any]], dead: dict[str, Any]
) -> list[dict[str, Any]]:
    """One row per queue that has a consumer, is configured or registered (known
    queues), or holds jobs; `unserved` when no worker created its consumer yet."""
    try:
        consumers = await js.consumers_info(JOBS_STREAM)
    except NotFoundError:
        consumers = []
    rows: dict[str, dict[str, Any]] = {}
    for c in consumers:
        if not c.name.startswith(CONSUMER_PREFIX):
            continue
        # A priority level's consumer (`q-<queue>~<level>`) counts for its queue.
        name = c.name[len(CONSUMER_PREFIX) :].split("~", 1)[0]
        row = rows.setdefault(name, _empty_row(name))
        row["pending"] += c.num_pending or 0
        row["in_flight"] += c.num_ack_pending or 0
        row["redelivered"] += c.num_redelivered or 0
        row["waiting_pulls"] += c.num_waiting or 0
        row["paused"] = row["paused"] or bool(getattr(c, "paused", False))
    consumed = set(rows)
    for name in [*(config.queues if config else ()), *await known_queues(js)]:
        rows.setdefault(name, _empty_row(name))
    for name, waiting in (await unserved(js, consumed)).items():
        # Jobs on a subject no worker consumes: a typo, or a queue whose workers are
        # still to come. They wait there until a worker for that queue starts.
        rows.setdefault(name, _empty_row(name))["pending"] += waiting
    for name, row in rows.items():
        row["unserved"] = name not in consumed  # no worker ever created its consumer
    for name, row in rows.items():
        procs = [r for r in records if r.get("role") == "worker" and name in r.get("queues", [])]
        row["dead"] = dead["counts"].get(name, 0) if dead["available"] else None
        row["processes"] = len(procs)
        row["concurrency"] = sum(_per_queue(r, "slots", name, "concurrency") for r in procs)
        row["running"] = sum(_per_queue(r, "busy", name, "running") for r in procs)
        row["pools"] = sorted({r["pool"] for r in procs if r.get("pool")})
    return [rows[k] for k in sorted(rows)]


def _per_queue(record: dict[str, Any], key: str, queue: str, whole: str) -> int:
    """A worker's figure for one of its queues: per queue in a pooled process's record
    (`slots`, `busy`), else the process's own (it serves that one queue)."""
    by_queue = record.get(key)
    if isinstance(by_queue, dict) and queue in by_queue:
        return int(by_queue[queue])
    value = record.get(whole, 0)
    return len(value) if isinstance(value, list) else int(value)


def schedules(config: Config | None, now: float | None = None) -> list[dict[str, Any]]:
    """Configured schedules with their next fire time (cron; interval ones say 'every')."""
    if config is None:
        return []
    from croniter import croniter

    at = time.time() if now is None else now
    rows = []
    for s in config.schedules.values():
        row: dict[str, Any] = {
            "schedule": s.name,
            "task": s.task,
            "queue": s.queue,
            "enabled": s.enabled,
            "trigger": s.cron if s.cron else f"every {s.every:g}s",
            "timezone": s.timezone,
            "next": None,
        }
        if s.cron and s.enabled:
            start = dt.datetime.fromtimestamp(at, ZoneInfo(s.timezone))
            six = len(s.cron.split()) == 6
            nxt = croniter(s.cron, start, second_at_beginning=six).get_next(dt.datetime)
            row["next"] = nxt.timestamp()
        rows.append(row)
    return sorted(rows, key=lambda r: (r["next"] is None, r["next"] or 0, r["schedule"]))


async def server(nc: NATS, js: JetStreamContext) -> dict[str, Any]:
    info: dict[str, Any] = dict(getattr(nc, "_server_info", {}) or {})
    out: dict[str, Any] = {
        "connected_url": str(nc.connected_url.netloc) if nc.connected_url else None,
        "server_name": info.get("server_name"),
        "version": info.get("version"),
        "cluster": info.get("cluster"),
        "servers": sorted({f"{u.hostname}:{u.port}" for u in (s.uri for s in nc._server_pool)}),
        "jetstream": None,
    }
    try:
        acct = await js.account_info()
        out["jetstream"] = {
            "streams": acct.streams,
            "consumers": acct.consumers,
            "memory": acct.memory,
            "storage": acct.storage,
            "api_level": getattr(acct.api, "level", None),
        }
    except Exception as exc:  # JetStream disabled or unavailable: say so, do not fail
        out["jetstream_error"] = str(exc) or type(exc).__name__
    return out


async def collect_status(nc: NATS, config: Config | None) -> dict[str, Any]:
    js = nc.jetstream()
    records, dead, srv = await asyncio.gather(workers(js), dead_letters(js), server(nc, js))
    return {
        "time": time.time(),
        "server": srv,
        "queues": await queues(js, config, records, dead),
        "workers": records,
        "hosts": hosts(records),
        "leader": leader(records),
        "schedules": await published_schedules(js, config),
        "dead_letters": dead,
    }


async def published_schedules(js: JetStreamContext, config: Config | None) -> list[dict[str, Any]]:
    """The schedules as the elected scheduler published them (so a reload that added one
    shows at once, on every host), else this process's configured ones."""
    from dataclasses import replace

    from naqd.protocol.schedule_state import ScheduleState

    try:
        published = await ScheduleState(js).yaml_schedules()
    except Exception:  # no bucket yet, or NATS busy: the file's view
        published = []
    if not published:
        return schedules(config)
    base = config if config is not None else Config()
    return schedules(replace(base, schedules={s.name: s for s in published}))


def hosts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Processes per host and role, for the one-screen summary."""
    by: dict[str, dict[str, Any]] = {}
    for r in records:
        h = by.setdefault(
            r.get("host", "?"),
            {"host": r.get("host", "?"), "workers": 0, "schedulers": 0, "running": 0},
        )
        if r.get("role") == "worker":
            h["workers"] += 1
        elif r.get("role") == "scheduler":
            h["schedulers"] += 1
        h["running"] += len(r.get("running", []))
    return [by[k] for k in sorted(by)]
