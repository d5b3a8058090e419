"""`naqd audit`: the audit trail of operator actions, newest first."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from naqd.cli.common import EXIT_USAGE, add_servers, fail
from naqd.cli.common import client as make_client


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="list operator actions (console and CLI), newest first")
    p.add_argument("--action", help="only actions starting with this (dlq, queue.pause, ...)")
    p.add_argument("--actor", help="only this actor (a console user, or cli:USER@HOST)")
    p.add_argument("--target", help="only this target (job id, queue, schedule)")
    p.add_argument("--since", metavar="DURATION", help="only the last DURATION (1h, 2d)")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    add_servers(p)


def cmd_audit(args: argparse.Namespace) -> int:
    from naqd.client.audit import AuditLog
    from naqd.values import parse_duration

    since = None
    if args.since:
        try:
            since = time.time() - parse_duration(args.since)
        except ValueError as exc:
            return fail(f"--since: {exc}", EXIT_USAGE)

    async def go() -> int:
        async with make_client(args) as client:
            log = AuditLog(client.nc)
            entries, cursor = [], None
            while len(entries) < args.limit:
                page = await log.list(
                    action=args.action, actor=args.actor, target=args.target, since=since,
                    cursor=cursor, limit=args.limit - len(entries),
                )  # fmt: skip
                entries += page.items
                cursor = page.cursor
                if cursor is None:
                    break
        if args.json:
            for e in entries:
                print(json.dumps(e.to_dict(), default=str))
            return 0
        if not entries:
            print("no audit entries")
            return 0
        print(f"{'TIME':<19}  {'ACTOR':<24} {'ACTION':<18} {'RESULT':<9} TARGET")
        for e in entries:
            at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.at))
            print(f"{at:<19}  {e.actor[:24]:<24} {e.action:<18} {e.result:<9} {e.target}")
        return 0

    return asyncio.run(go())


COMMANDS = {"audit": cmd_audit}
