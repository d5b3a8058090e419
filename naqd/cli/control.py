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
            from naqd.client.actions import Actions

            act = Actions(client, via="cli")
            try:
                if args.action == "pause":
                    await act.pause_queue(args.queue)
                else:
                    await act.resume_queue(args.queue)
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
        from naqd.client.actions import Actions
        from naqd.client.errors import Conflict, JobNotFound

        async with make_client(args) as client:
            try:
                await Actions(client, via="cli").cancel_job(job_id)
            except ValueError as exc:
                return fail(str(exc), EXIT_USAGE)
            except JobNotFound as exc:
                return fail(str(exc), EXIT_NOT_FOUND)
            except Conflict:
                return fail(f"job {job_id} has already finished", EXIT_FAILED)
            if args.json:
                print_json({"id": job_id, "cancelled": True})
            else:
                print(f"cancelled {job_id}")
            return 0

    return asyncio.run(go())
