"""Dead-letter commands: dlq list, show, requeue, purge."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from naqd.cli.common import EXIT_NOT_FOUND, add_servers, confirm, connect_once, print_json


def register(sub: argparse._SubParsersAction) -> None:
    dlq = sub.add_parser("dlq", help="inspect and requeue dead-lettered jobs")
    verbs = dlq.add_subparsers(dest="dlq_command", required=True)
    ls = verbs.add_parser("list", help="list dead letters (of one queue)")
    ls.add_argument("queue", nargs="?")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    show = verbs.add_parser("show", help="one dead letter with its errors and tracebacks")
    show.add_argument("id", help="job id (or seq-N for a message that had none)")
    show.add_argument("--json", action="store_true", help="the whole entry as one JSON object")
    rq = verbs.add_parser("requeue", help="enqueue dead-lettered jobs again")
    target = rq.add_mutually_exclusive_group(required=True)
    target.add_argument("id", nargs="?", help="job id")
    target.add_argument("--all", metavar="QUEUE", dest="all_queue", help="every entry of QUEUE")
    rq.add_argument("--json", action="store_true", help="the requeued ids as JSON")
    purge = verbs.add_parser("purge", help="delete every dead letter of a queue")
    purge.add_argument("queue")
    purge.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    purge.add_argument("--json", action="store_true", help="the count as JSON")
    for p in (ls, show, rq, purge):
        add_servers(p)


def _run(args: argparse.Namespace, body: Callable[[Any], Awaitable[int]]) -> int:
    from naqd.client.deadletters import DeadLetters

    async def go() -> int:
        nc = await connect_once(args)
        try:
            return await body(DeadLetters(nc))
        finally:
            await nc.drain()

    return asyncio.run(go())


def cmd_dlq(args: argparse.Namespace) -> int:
    return {"list": _list, "show": _show, "requeue": _requeue, "purge": _purge}[args.dlq_command](
        args
    )


def _list(args: argparse.Namespace) -> int:
    async def body(dl: Any) -> int:
        entries = await dl.list(args.queue)
        if args.json:
            for e in entries:
                print(json.dumps(e.summary()))
            return 0
        if not entries:
            print("no dead letters")
            return 0
        print(f"{'ID':<34} {'QUEUE':<12} {'REASON':<14} {'ATT':>3}  {'DIED':<19}  ERROR")
        for e in entries:
            died = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.dead_at))
            error = f"{e.error.type}: {e.error.message}".splitlines()[0][:60]
            print(f"{e.id:<34} {e.queue:<12} {e.reason:<14} {e.attempts:>3}  {died}  {error}")
        return 0

    return _run(args, body)


def _show(args: argparse.Namespace) -> int:
    async def body(dl: Any) -> int:
        entry = await dl.get(args.id)
        if entry is None:
            print(f"no dead letter {args.id!r}", file=sys.stderr)
            return EXIT_NOT_FOUND
        if args.json:
            print(json.dumps({**entry.to_dict(), "seq": entry.seq}, indent=2))
        else:
            print(render_entry(entry))
        return 0

    return _run(args, body)


def render_entry(entry: Any) -> str:
    """A dead letter for people: fields as lines, each error's traceback as the text it
    was (JSON would escape every newline), the payload last."""
    d = entry.to_dict()
    died = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.dead_at))
    lines = [
        f"id:        {entry.id}",
        f"queue:     {entry.queue}",
        f"task:      {entry.task or '-'}",
        f"reason:    {entry.reason}",
        f"attempts:  {entry.attempts}",
        f"died:      {died} on {entry.worker or '-'}",
        f"subject:   {entry.subject} (stream seq {entry.stream_seq}, dlq seq {entry.seq})",
        f"error:     {entry.error.type}: {entry.error.message}",
    ]
    for name, value in sorted(entry.headers.items()):
        lines.append(f"header:    {name}: {value}")
    errors = entry.errors or (entry.error,)
    for i, err in enumerate(errors, 1):
        lines.append("")
        lines.append(f"--- attempt {i} of {len(errors)}: {err.type}: {err.message}")
        lines.append(err.traceback.rstrip() if err.traceback else "(no traceback)")
    lines.append("")
    lines.append(f"--- payload ({d['payload_encoding']})")
    lines.append(d["payload"])
    return "\n".join(lines)


def _requeue(args: argparse.Namespace) -> int:
    async def body(dl: Any) -> int:
        if args.all_queue:
            entries = await dl.list(args.all_queue)
        else:
            entry = await dl.get(args.id)
            if entry is None:
                print(f"no dead letter {args.id!r}", file=sys.stderr)
                return EXIT_NOT_FOUND
            entries = [entry]
        for e in entries:
            await dl.requeue(e)
            if not args.json:
                print(f"requeued {e.id} to {e.queue}")
        if args.json:
            print_json({"requeued": [{"id": e.id, "queue": e.queue} for e in entries]})
        elif not entries:
            print("nothing to requeue")
        return 0

    return _run(args, body)


def _purge(args: argparse.Namespace) -> int:
    refused = confirm(f"Delete every dead letter of queue {args.queue!r}?", args.yes)
    if refused is not None:
        return refused

    async def body(dl: Any) -> int:
        count = await dl.purge(args.queue)
        if args.json:
            print_json({"queue": args.queue, "purged": count})
        else:
            print(f"purged {count} dead letter(s) of {args.queue}")
        return 0

    return _run(args, body)


COMMANDS = {"dlq": cmd_dlq}
