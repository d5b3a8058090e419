"""Job commands: `naqd job JOB_ID` (status, progress, record) and `naqd job cancel JOB_ID`."""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict

from naqd.cli.common import EXIT_FAILED, EXIT_USAGE, add_servers, fail, serializer, servers


def register(sub: argparse._SubParsersAction) -> None:
    job = sub.add_parser(
        "job", help="show a job (status, progress, result) or cancel it: job [cancel] JOB_ID"
    )
    job.add_argument("words", nargs="+", metavar="[cancel] JOB_ID")
    job.add_argument("--json", action="store_true", help="print the whole record as JSON")
    add_servers(job)


def cmd_job(args: argparse.Namespace) -> int:
    from naqd.client import Client

    words = list(args.words)
    cancel = words[0] == "cancel" and len(words) == 2
    if len(words) != (2 if cancel else 1):
        return fail("usage: naqd job JOB_ID | naqd job cancel JOB_ID", EXIT_USAGE)
    job_id = words[-1]

    async def go() -> int:
        async with Client(
            servers(args), serializer=serializer(args), connect_deadline=args.connect_timeout
        ) as client:
            try:
                if cancel:
                    if await client.cancel(job_id):
                        print(f"cancelled {job_id}")
                        return 0
                    return fail(f"job {job_id} has already finished", EXIT_FAILED)
                rec = await client.record(job_id)
            except ValueError as exc:
                return fail(str(exc), EXIT_USAGE)
            if args.json:
                out = asdict(rec) if rec else {"id": job_id, "status": "queued"}
                print(json.dumps(out, default=repr, indent=2))
                return 0
            if rec is None:
                print(f"{job_id}  queued (no worker has taken it yet, or unknown id)")
                return 0
            line = f"{job_id}  {rec.status}"
            if rec.progress is not None:
                line += f"  {rec.progress:.0%}"
                if rec.progress_message:
                    line += f" {rec.progress_message}"
            print(line)
            print(f"  task {rec.task}  queue {rec.queue}  attempts {rec.attempts}  {rec.worker}")
            if rec.error is not None:
                print(f"  error {rec.error.type}: {rec.error.message}")
            elif rec.status == "succeeded":
                print(f"  result {json.dumps(rec.result, default=repr)}")
            return 0

    return asyncio.run(go())


COMMANDS = {"job": cmd_job}
