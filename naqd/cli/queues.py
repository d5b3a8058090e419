"""Queue commands: `naqd queues [list]` and `naqd queues pause|resume QUEUE`."""

from __future__ import annotations

import argparse
import asyncio
import json

from naqd.cli.common import EXIT_USAGE, add_servers, fail, serializer, servers


def register(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser(
        "queues", help="list queues (waiting, in flight, paused), pause or resume one"
    )
    q.add_argument("action", nargs="?", default="list", choices=("list", "pause", "resume"))
    q.add_argument("queue", nargs="?")
    q.add_argument("--json", action="store_true", help="print JSON")
    add_servers(q)


def cmd_queues(args: argparse.Namespace) -> int:
    from naqd.client import Client

    if args.action != "list" and not args.queue:
        return fail(f"naqd queues {args.action} needs a QUEUE", EXIT_USAGE)

    async def go() -> int:
        async with Client(
            servers(args), serializer=serializer(args), connect_deadline=args.connect_timeout
        ) as client:
            if args.action == "pause":
                await client.pause_queue(args.queue)
                print(f"paused {args.queue}: workers take no new jobs from it")
                return 0
            if args.action == "resume":
                await client.resume_queue(args.queue)
                print(f"resumed {args.queue}")
                return 0
            infos = await client.queues()
            if args.json:
                out = [
                    {
                        "name": i.name,
                        "waiting": i.waiting,
                        "in_flight": i.in_flight,
                        "paused": i.paused,
                        "max_in_flight": i.max_in_flight,
                    }
                    for i in infos
                ]
                print(json.dumps(out, indent=2))
                return 0
            for i in infos:
                state = "paused" if i.paused else "active"
                print(
                    f"{i.name:<20} {state:<7} waiting {i.waiting:<8} "
                    f"in flight {i.in_flight}/{i.max_in_flight}"
                )
            if not infos:
                print("no queues (no naqd worker has started on this NATS account)")
            return 0

    return asyncio.run(go())


COMMANDS = {"queues": cmd_queues}
