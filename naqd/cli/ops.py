"""Operator commands: status, workers, queues, purge, job. Tables for people, `--json` for
scripts; exit codes in EXIT_* below (docs/status.md)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from naqd.cli.common import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    add_servers,
    config_path,
    confirm,
    connect_once,
    load,
)

DEFAULT_SCAN = 100_000  # messages `naqd job` looks through for a queued job's envelope


def register(sub: argparse._SubParsersAction) -> None:
    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        add_servers(p)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    command("status", help="one screen: NATS, queues, workers per host, leader, schedules")
    command("workers", help="every naqd process's heartbeat, across all hosts")
    queues = command("queues", help="pending / in-flight / dead jobs per queue; pause|resume one")
    queues.add_argument("action", nargs="?", default="list", choices=("list", "pause", "resume"))
    queues.add_argument("queue", nargs="?", help="the queue to pause or resume")
    purge = command("purge", help="remove every waiting job of a queue")
    purge.add_argument("queue")
    purge.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    job = command("job", help="a job's envelope, status, progress and result; job cancel ID")
    job.add_argument("words", nargs="+", metavar="[cancel] JOB_ID")
    job.add_argument(
        "--scan",
        type=int,
        default=DEFAULT_SCAN,
        metavar="N",
        help=f"queued messages to search for the envelope (default {DEFAULT_SCAN}; 0: skip)",
    )


# -- plumbing -----------------------------------------------------------------------------


def _run(args: argparse.Namespace, go: Callable[[Any], Awaitable[int]]) -> int:
    """Connect once with the config's credentials, run `go`."""

    async def main() -> int:
        nc = await connect_once(args)
        try:
            return await go(nc)
        finally:
            await nc.close()

    return asyncio.run(main())


def _config(args: argparse.Namespace) -> Any:
    path = config_path(args)
    return load(path) if path else None


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header, *[["-" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def when(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return "-"
    stamp = dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    delta = ts - (time.time() if now is None else now)
    return f"{stamp} ({_ago(delta)})"


def _ago(delta: float) -> str:
    span = abs(delta)
    text = (
        f"{span:.0f}s"
        if span < 120
        else f"{span / 60:.0f}m"
        if span < 7200
        else f"{span / 3600:.1f}h"
    )
    return f"in {text}" if delta > 0 else f"{text} ago"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n:.1f} TiB"


# -- status ---------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from naqd.observe.status import collect_status

    config = _config(args)

    async def go(nc: Any) -> int:
        data = await collect_status(nc, config)
        if args.json:
            _print_json(data)
        else:
            print(render_status(data))
        return 0

    return _run(args, go)


STATUS_WORKERS = 20  # worker processes listed by `naqd status` (all: `naqd workers`)


def render_status(data: dict[str, Any]) -> str:
    srv = data["server"]
    out = [
        f"NATS       {srv['connected_url']} (server {srv['server_name']} v{srv['version']}"
        + (f", cluster {srv['cluster']}" if srv.get("cluster") else "")
        + f"; known: {', '.join(srv['servers'])})"
    ]
    js = srv.get("jetstream")
    if js:
        out.append(
            f"JetStream  {js['streams']} streams, {js['consumers']} consumers, "
            f"{_size(js['storage'])} stored, {_size(js['memory'])} in memory, "
            f"API level {js['api_level']}"
        )
    else:
        out.append(f"JetStream  unavailable: {srv.get('jetstream_error')}")
    out += ["", queues_table(data["queues"]), ""]
    hosts = data["hosts"]
    if hosts:
        rows = [[h["host"], h["workers"], h["schedulers"], h["running"]] for h in hosts]
        out.append(table(rows, ["HOST", "WORKERS", "SCHEDULERS", "RUNNING"]))
    else:
        out.append("no naqd processes are heartbeating")
    procs = [r for r in data.get("workers", []) if r.get("role") == "worker"]
    if procs:
        rows = [
            [
                r.get("host"),
                r.get("pid"),
                r.get("pool") or "-",
                ",".join(r.get("queues", [])) or "-",
                f"{len(r.get('running', []))}/{r.get('concurrency', 0)}",
            ]
            for r in procs[:STATUS_WORKERS]
        ]
        out += ["", table(rows, ["HOST", "PID", "POOL", "QUEUES", "RUNNING"])]
        if len(procs) > STATUS_WORKERS:
            out.append(f"... and {len(procs) - STATUS_WORKERS} more (naqd workers lists all)")
    lead = data.get("leader")
    out += [
        "",
        f"Scheduler leader: {lead['host']} pid {lead['pid']}" if lead else "Scheduler leader: none",
    ]
    if data["schedules"]:
        rows = [
            [s["schedule"], when(s["next"]) if s["next"] else "-", s["trigger"], s["task"]]
            for s in data["schedules"][:10]
        ]
        out += ["", table(rows, ["SCHEDULE", "NEXT", "TRIGGER", "TASK"])]
    return "\n".join(out)


def queues_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no queues"
    return table(
        [
            [
                q["queue"],
                q["pending"],
                q["in_flight"],
                q["dead"],
                q["redelivered"],
                q["processes"],
                f"{q['running']}/{q['concurrency']}",
                "no worker" if q.get("unserved") else "paused" if q.get("paused") else "active",
            ]
            for q in rows
        ],
        ["QUEUE", "PENDING", "IN FLIGHT", "DEAD", "REDELIVERED", "PROCESSES", "RUNNING", "STATE"],
    )


# -- workers, queues ------------------------------------------------------------------------


def cmd_workers(args: argparse.Namespace) -> int:
    from naqd.observe.status import workers

    async def go(nc: Any) -> int:
        records = await workers(nc.jetstream())
        if args.json:
            _print_json(records)
        elif not records:
            print("no naqd processes are heartbeating")
        else:
            now = time.time()
            rows = [
                [
                    r.get("host"),
                    r.get("pid"),
                    r.get("role"),
                    r.get("pool") or "-",
                    ",".join(r.get("queues", [])) or "-",
                    f"{len(r.get('running', []))}/{r.get('concurrency', 0)}",
                    r.get("done", 0),
                    r.get("failed", 0),
                    _ago(r.get("started_at", now) - now),
                    f"{now - r.get('last_heartbeat', now):.1f}s",
                    r.get("version"),
                ]
                for r in records
            ]
            header = ["HOST", "PID", "ROLE", "POOL", "QUEUES", "RUNNING", "DONE", "FAILED"]
            print(table(rows, [*header, "STARTED", "HEARTBEAT", "VERSION"]))
        return 0

    return _run(args, go)


def cmd_queues(args: argparse.Namespace) -> int:
    from naqd.observe.status import dead_letters, queues, workers

    if args.action != "list":
        from naqd.cli.control import pause_or_resume

        return pause_or_resume(args)
    config = _config(args)

    async def go(nc: Any) -> int:
        js = nc.jetstream()
        rows = await queues(js, config, await workers(js), await dead_letters(js, recent=0))
        if args.json:
            _print_json(rows)
        else:
            print(queues_table(rows))
        return 0

    return _run(args, go)


# -- purge ----------------------------------------------------------------------------------


def cmd_purge(args: argparse.Namespace) -> int:
    """Through naqd/client/actions.py, as the console does (audited)."""
    from naqd.cli.common import client as make_client
    from naqd.client.actions import Actions
    from naqd.client.queues import QueueNotFound

    refused = confirm(f"Remove every waiting job of queue {args.queue!r}?", args.yes)
    if refused is not None:
        return refused

    async def go() -> int:
        async with make_client(args) as client:
            try:
                done = await Actions(client, via="cli").purge_queue(args.queue)
            except QueueNotFound as exc:
                print(str(exc), file=sys.stderr)
                return EXIT_NOT_FOUND
            except (RuntimeError, ValueError) as exc:
                print(str(exc), file=sys.stderr)
                return EXIT_FAILED
        if args.json:
            _print_json({"queue": args.queue, "purged": done.count})
        else:
            print(f"purged {done.count} job(s) from queue {args.queue}")
        return 0

    return asyncio.run(go())


# -- job --------------------------------------------------------------------------------------


async def find_envelope(js: Any, job_id: str, limit: int) -> dict[str, Any] | None:
    """A job still in the stream (queued or running): look for its Nats-Msg-Id, at most
    `limit` messages. There is no index by id: the stream is walked message by message."""
    from nats.js.errors import NotFoundError

    from naqd.protocol.envelope import EnvelopeError, decode_job
    from naqd.protocol.names import (
        HDR_ENCODING,
        HDR_MSG_ID,
        JOBS_STREAM,
        JOBS_SUBJECT_PREFIX,
        under,
    )

    if limit <= 0:
        return None
    try:
        info = await js.stream_info(JOBS_STREAM)
    except NotFoundError:
        return None
    seq = info.state.first_seq
    for _ in range(limit):
        if seq > info.state.last_seq:
            break
        try:
            msg = await js.get_msg(JOBS_STREAM, seq, subject=under(JOBS_SUBJECT_PREFIX), next=True)
        except NotFoundError:
            break
        headers = msg.headers or {}
        if headers.get(HDR_MSG_ID) == job_id:
            encoding = headers.get(HDR_ENCODING, "json")
            found: dict[str, Any] = {
                "stream_seq": msg.seq,
                "subject": msg.subject,
                "encoding": encoding,
            }
            if encoding != "json":
                found["envelope"] = "(pickled: not decoded)"
                return found
            try:
                found["envelope"] = decode_job(msg.data, encoding).to_dict()
            except EnvelopeError as exc:
                found["envelope"] = f"(unreadable: {exc})"
            return found
        seq = msg.seq + 1
    return None


def cmd_job(args: argparse.Namespace) -> int:
    from nats.js.errors import KeyNotFoundError, NotFoundError

    words = list(args.words)
    if words[0] == "cancel" and len(words) == 2:
        from naqd.cli.control import cancel

        return cancel(args, words[1])
    if len(words) != 1:
        return _usage("usage: naqd job JOB_ID | naqd job cancel JOB_ID")
    args.job_id = words[0]

    from naqd.protocol.names import RESULTS_BUCKET

    async def go(nc: Any) -> int:
        js = nc.jetstream()
        record = None
        try:
            entry = await (await js.key_value(RESULTS_BUCKET)).get(args.job_id)
            record = json.loads(entry.value) if entry.value else None
        except (KeyNotFoundError, NotFoundError):
            pass
        if record and record.get("encoding") == "pickle" and record.get("result") is not None:
            record["result"] = "(pickled: not decoded)"
        done = bool(record and record.get("status") in ("succeeded", "failed"))
        found = None if done else await find_envelope(js, args.job_id, args.scan)
        if record is None and found is None:
            msg = f"job {args.job_id}: not found (no result record"
            print(
                msg + (", not in the queue)" if args.scan > 0 else "; queue not searched)"),
                file=sys.stderr,
            )
            return EXIT_NOT_FOUND
        status = record["status"] if record else "queued"
        data = {"id": args.job_id, "status": status, "record": record, "queued": found}
        if args.json:
            _print_json(data)
        else:
            print(render_job(data))
        return EXIT_FAILED if status == "failed" else 0

    return _run(args, go)


def render_job(data: dict[str, Any]) -> str:
    rec = data["record"] or {}
    env = (data["queued"] or {}).get("envelope")
    status = data["status"]
    if rec.get("progress") is not None:
        status += f"  {rec['progress']:.0%} {rec.get('progress_message') or ''}".rstrip()
    lines = [f"job       {data['id']}", f"status    {status}"]
    task = rec.get("task") or (env.get("task") if isinstance(env, dict) else None)
    queue = rec.get("queue") or (env.get("queue") if isinstance(env, dict) else None)
    lines += [f"task      {task}", f"queue     {queue}"]
    if rec:
        lines += [
            f"attempts  {rec.get('attempts')}",
            f"enqueued  {when(rec.get('enqueued_at'))}",
            f"started   {when(rec.get('started_at'))}",
            f"finished  {when(rec.get('finished_at'))}",
            f"worker    {rec.get('worker') or '-'}",
        ]
        if rec.get("status") == "succeeded":
            lines.append(f"result    {json.dumps(rec.get('result'), default=str)}")
        err = rec.get("error")
        if err:
            lines.append(f"error     {err.get('type')}: {err.get('message')}")
            if err.get("traceback"):
                lines.append(err["traceback"].rstrip())
    if data["queued"]:
        lines.append(f"in stream seq {data['queued']['stream_seq']} ({data['queued']['subject']})")
        lines.append(f"envelope  {json.dumps(env, default=str)}")
    return "\n".join(lines)


COMMANDS = {
    "status": cmd_status,
    "workers": cmd_workers,
    "queues": cmd_queues,
    "purge": cmd_purge,
    "job": cmd_job,
}


def _usage(message: str) -> int:
    print(message, file=sys.stderr)
    return EXIT_USAGE
