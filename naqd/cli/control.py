"""Job and queue control behind `naqd job cancel ID` and `naqd queues pause|resume Q`
(registered as actions of the ops commands `job` and `queues`)."""

from __future__ import annotations

import argparse
import asyncio

from naqd.cli.common import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_USAGE, fail, print_json
from naqd.cli.common import client as make_client


def pause_or_resume(args: argparse.Namespace) -> int:
    from naqd.client import QueueNotFound

    if not args.queue:
        return fail(f"naqd queues {args.action} needs a QUEUE", EXIT_USAGE)

    async def go() -> int:
        async with make_client(args) as client:
            try:
                if args.action == "pause":
                    await client.pause_queue(args.queue)
                else:
                    await client.resume_queue(args.queue)
            except QueueNotFound as exc:
                return fail(str(exc), EXIT_NOT_FOUND)
            if args.json:
                print_json({"queue": args.queue, "paused": args.action == "pause"})
            elif args.action == "pause":
                print(f"paused {args.queue}: workers take no new jobs from it")
            else:
                print(f"resumed {args.queue}")
            return 0

    return asyncio.run(go())


def cancel(args: argparse.Namespace, job_id: str) -> int:
    async def go() -> int:
        async with make_client(args) as client:
            try:
                if await client.cancel(job_id):
                    if args.json:
                        print_json({"id": job_id, "cancelled": True})
                    else:
                        print(f"cancelled {job_id}")
                    return 0
            except ValueError as exc:
                return fail(str(exc), EXIT_USAGE)
            return fail(f"job {job_id} has already finished", EXIT_FAILED)

    return asyncio.run(go())
