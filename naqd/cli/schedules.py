"""Schedule and delayed-job commands: `naqd schedules [trigger|pause|resume NAME]` and
`naqd delayed [list|cancel JOB_ID]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from naqd.cli.common import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    add_servers,
    config_path,
    load,
    print_json,
)
from naqd.cli.common import client as make_client


def register(sub: argparse._SubParsersAction) -> None:
    sch = sub.add_parser(
        "schedules",
        help="list YAML and code schedules (next/last fire, leader), or trigger/pause/"
        "resume/remove one",
    )
    actions = ("list", "trigger", "pause", "resume", "remove")
    sch.add_argument("action", nargs="?", default="list", choices=actions)
    sch.add_argument("name", nargs="?", help="schedule name (for trigger, pause, resume, remove)")
    sch.add_argument("--json", action="store_true", help="print JSON")
    add_servers(sch)

    dl = sub.add_parser("delayed", help="list pending delayed jobs, or cancel one")
    dl.add_argument("action", nargs="?", default="list", choices=("list", "cancel"))
    dl.add_argument("job_id", nargs="?")
    dl.add_argument("--json", action="store_true", help="print JSON")
    add_servers(dl)


def _fmt(t: datetime | None, zone: str = "UTC") -> str:
    if t is None:
        return "-"
    return t.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def cmd_schedules(args: argparse.Namespace) -> int:
    from naqd.models import Config

    # Without --config only code schedules are known (they live in KV).
    path = config_path(args)
    config = load(path) if path else Config()
    if args.action != "list" and not args.name:
        print(f"naqd schedules {args.action} needs a schedule NAME", file=sys.stderr)
        return EXIT_USAGE
    if args.action == "remove" and args.name in config.schedules:
        print(f"{args.name} is a YAML schedule: remove it from the file", file=sys.stderr)
        return EXIT_FAILED

    from naqd.protocol.schedule_state import ScheduleState

    async def go() -> int:
        async with make_client(args) as client:
            state = ScheduleState(client._js)
            if args.action == "list":
                return await _list(config, state, args.json)
            schedule = config.schedules.get(args.name)
            if schedule is None:
                from naqd.client.schedules import ScheduleNotFound

                try:  # a code schedule, or a YAML one the elected scheduler published
                    schedule = await client.schedule_definition(args.name)
                except ScheduleNotFound:
                    known = ", ".join(sorted(config.schedules)) or "(none in YAML)"
                    print(
                        f"unknown schedule {args.name!r} (YAML: {known}; code schedules: "
                        "see `naqd schedules`)",
                        file=sys.stderr,
                    )
                    return EXIT_NOT_FOUND
            done: dict[str, Any] = {"schedule": args.name, "action": args.action}
            from naqd.client.actions import Actions

            act = Actions(client, via="cli")
            if args.action == "trigger":
                if args.name in config.schedules:  # this file's definition, as before
                    from naqd.protocol.ticks import manual_job_id
                    from naqd.scheduler.firing import publish_fire  # the daemon extra

                    job_id = manual_job_id(args.name, datetime.now(UTC))
                    await publish_fire(client, schedule, job_id)
                else:
                    job_id = (await act.trigger_schedule(args.name)).ids[0]
                done["job_id"] = job_id
                text = job_id
            elif args.action == "pause":
                await act.pause_schedule(args.name)
                text = f"paused {args.name}"
            elif args.action == "resume":
                await act.resume_schedule(args.name)
                text = f"resumed {args.name}"
            else:
                await state.code_remove(args.name)
                text = f"removed {args.name}"
            if args.json:
                print_json(done)
            else:
                print(text)
            return 0

    return asyncio.run(go())


async def _list(config: Any, state: Any, as_json: bool) -> int:
    from naqd.protocol.ticks import Trigger

    now = datetime.now(UTC)
    leader = await state.leader()
    # Without --config, the YAML schedules the elected scheduler published (any host).
    yaml_defs = list(config.schedules.values()) or await state.yaml_schedules()
    entries = [(s, "yaml", now) for s in yaml_defs]
    try:
        code = await state.code_list()
    except Exception as exc:  # no scheduler ever ran: no bucket
        print(f"(code schedules unavailable: {exc})", file=sys.stderr)
        code = []
    entries += [(c.schedule, "code", max(now, c.since)) for c in code]
    rows = []
    for s, origin, after in sorted(entries, key=lambda e: e[0].name):
        nxt = Trigger.of(s).next_after(after)
        last = await state.last_record(s.name)
        paused = await state.paused(s.name)
        shadowed = origin == "code" and s.name in {y.name for y in yaml_defs}
        rows.append(
            {
                "name": s.name,
                "origin": origin,
                "trigger": s.cron if s.cron else f"every {s.every:g}s",
                "timezone": s.timezone,
                "task": s.task,
                "queue": s.queue,
                "enabled": s.enabled and not shadowed,
                "paused": paused,
                "next": nxt.isoformat(),
                "next_local": _fmt(nxt, s.timezone),
                "last_tick": last.get("tick") if last else None,
                "last_job": last.get("job_id") if last else None,
            }
        )
    lead = {"host": leader.host, "pid": leader.pid, "since": leader.since} if leader else None
    if as_json:
        print(json.dumps({"leader": lead, "schedules": rows}, indent=2))
        return 0
    if leader:
        since = datetime.fromtimestamp(leader.since, UTC)
        ago = time.time() - leader.since
        print(f"leader: {leader.host} pid {leader.pid} since {_fmt(since)} ({ago:.0f}s)")
    else:
        print("leader: none (no scheduler running?)")
    for r in rows:
        state_text = "disabled" if not r["enabled"] else "paused" if r["paused"] else "active"
        print(
            f"{r['name']:<20} {r['origin']:<4} {r['trigger']:<18} {state_text:<8} "
            f"next {r['next_local']} ({_fmt(datetime.fromisoformat(r['next']))})  "
            f"last {r['last_tick'] or '-'}"
        )
    return 0


def cmd_delayed(args: argparse.Namespace) -> int:

    async def go() -> int:
        async with make_client(args) as client:
            if args.action == "cancel":
                if not args.job_id:
                    print("naqd delayed cancel needs a JOB_ID", file=sys.stderr)
                    return EXIT_USAGE
                return await _cancel_delayed(client, args.job_id, args.json)
            pending = await client.delayed()
            if args.json:
                out = [
                    {"id": d.id, "queue": d.queue, "run_at": d.run_at.isoformat(), "task": d.task}
                    for d in pending
                ]
                print(json.dumps(out, indent=2))
                return 0
            for d in pending:
                print(f"{d.id}  {d.queue:<12} {_fmt(d.run_at)}  {d.task}")
            if not pending:
                print("no pending delayed jobs")
            return 0

    return asyncio.run(go())


async def _cancel_delayed(client: Any, job_id: str, as_json: bool) -> int:
    """Cancel only a job that is still held for later: an unknown id is "not found" (a
    plain `client.cancel` would record a cancel for any id and report success)."""
    from naqd.protocol.envelope import validate_job_id
    from naqd.protocol.names import JOBS_STREAM, delayed_filter

    try:
        validate_job_id(job_id)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    info = await client._js.stream_info(JOBS_STREAM, subjects_filter=delayed_filter(job_id))
    if not info.state.subjects or not await client.cancel(job_id):
        print(f"no pending delayed job {job_id}", file=sys.stderr)
        return EXIT_NOT_FOUND
    if as_json:
        print_json({"id": job_id, "cancelled": True})
    else:
        print(f"cancelled {job_id}")
    return 0


COMMANDS = {"schedules": cmd_schedules, "delayed": cmd_delayed}
