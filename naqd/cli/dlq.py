"""Dead-letter commands: dlq list, show, requeue, delete, purge (requeue and delete go
through naqd/client/actions.py, the console's code, and are audited)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from naqd.cli.common import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    add_servers,
    confirm,
    connect_once,
    print_json,
)


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
    delete = verbs.add_parser("delete", help="delete one dead letter")
    delete.add_argument("id", help="job id")
    delete.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    delete.add_argument("--json", action="store_true", help="the deleted id as JSON")
    purge = verbs.add_parser("purge", help="delete every dead letter of a queue")
    purge.add_argument("queue")
    purge.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    purge.add_argument("--json", action="store_true", help="the count as JSON")
    for p in (ls, show, rq, delete, purge):
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
    verbs = {"list": _list, "show": _show, "requeue": _requeue, "delete": _delete, "purge": _purge}
    return verbs[args.dlq_command](args)


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
    """Through naqd/client/actions.py, as the console does (audited, never twice)."""
    from naqd.cli.common import client as make_client
    from naqd.client.actions import Actions, DeadLetterFilter
    from naqd.client.errors import Conflict, DeadLetterNotFound

    async def go() -> int:
        async with make_client(args) as client:
            act = Actions(client, via="cli")
            if args.all_queue:
                matching = [e async for e in client.dead_letters.scan(args.all_queue)]
                if matching:
                    await act.requeue_dead_letters(DeadLetterFilter(queue=args.all_queue))
                entries = [(e.id, e.queue) for e in matching]
            else:
                try:
                    entry = await client.dead_letters.get(args.id)
                    await act.requeue_dead_letter(args.id)
                except DeadLetterNotFound:
                    print(f"no dead letter {args.id!r}", file=sys.stderr)
                    return EXIT_NOT_FOUND
                except Conflict as exc:
                    print(f"naqd: {exc}", file=sys.stderr)
                    return EXIT_FAILED
                entries = [(args.id, entry.queue if entry else "")]
            for job_id, queue in entries:
                if not args.json:
                    print(f"requeued {job_id} to {queue}")
            if args.json:
                print_json({"requeued": [{"id": i, "queue": q} for i, q in entries]})
            elif not entries:
                print("nothing to requeue")
            return 0

    return asyncio.run(go())


def _delete(args: argparse.Namespace) -> int:
    from naqd.cli.common import client as make_client
    from naqd.client.actions import Actions
    from naqd.client.errors import DeadLetterNotFound

    refused = confirm(f"Delete the dead letter of job {args.id!r}?", args.yes)
    if refused is not None:
        return refused

    async def go() -> int:
        async with make_client(args) as client:
            try:
                await Actions(client, via="cli").delete_dead_letter(args.id)
            except DeadLetterNotFound:
                print(f"no dead letter {args.id!r}", file=sys.stderr)
                return EXIT_NOT_FOUND
            if args.json:
                print_json({"deleted": args.id})
            else:
                print(f"deleted dead letter {args.id}")
            return 0

    return asyncio.run(go())


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
