"""Core commands: run, check, enqueue, result."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from naqd.cli.common import (
    EXIT_FAILED,
    EXIT_TIMEOUT,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    add_config,
    add_servers,
    config_path,
    fail,
    load,
    print_json,
)
from naqd.cli.common import client as make_client

if TYPE_CHECKING:
    from naqd.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the daemon in the foreground")
    add_config(run, required=True)
    run.add_argument(
        "--burst",
        action="store_true",
        help="run queued jobs until every queue is idle, then exit 0 (no scheduler)",
    )
    check = sub.add_parser("check", help="validate a config file")
    add_config(check, required=True)
    check.add_argument("--json", action="store_true", help="the queues and schedules as JSON")

    enq = sub.add_parser("enqueue", help="enqueue a job; prints its id (or result with --wait)")
    enq.add_argument("task", help="module:function")
    enq.add_argument("args", nargs="*", help="positional arguments, each parsed as JSON")
    enq.add_argument("--kwargs", default="{}", help="keyword arguments as a JSON object")
    enq.add_argument("--queue", "-q", default="default")
    enq.add_argument("--job-id")
    enq.add_argument("--retries", type=int)
    enq.add_argument("--priority", help="priority level of the queue (e.g. high)")
    enq.add_argument("--unique-key", help="deduplicate by this key (docs/job-control.md)")
    enq.add_argument("--unique-for", type=float, help="the unique window, seconds")
    enq.add_argument(
        "--unique-mode",
        choices=("until_done", "throttle", "debounce", "latest"),
        help="what a second enqueue with the key gets (default until_done)",
    )
    enq.add_argument("--timeout-job", type=float, dest="job_timeout", help="job timeout (s)")
    enq.add_argument("--wait", action="store_true", help="wait for and print the result")
    enq.add_argument("--timeout", type=float, default=60.0, help="seconds to --wait")
    enq.add_argument("--json", action="store_true", help='print {"id": ...} (and "result")')
    add_servers(enq)

    res = sub.add_parser("result", help="print a job's result record")
    res.add_argument("job_id")
    res.add_argument("--wait", action="store_true", help="wait for the job to finish")
    res.add_argument("--timeout", type=float, default=60.0)
    res.add_argument("--json", action="store_true", help="JSON (the default output anyway)")
    add_servers(res)


def cmd_check(args: argparse.Namespace) -> int:
    path = config_path(args, required=True)
    config = load(path)
    if args.json:
        print_json(
            {
                "config": path,
                "ok": True,
                "queues": {
                    q.name: {"processes": q.processes, "concurrency": q.concurrency}
                    for q in config.queues.values()
                },
                "schedules": sorted(config.schedules),
            }
        )
        return 0
    queues = ", ".join(f"{q.name}({q.processes}x{q.concurrency})" for q in config.queues.values())
    print(f"{path}: OK (queues: {queues}; schedules: {len(config.schedules)})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    return run_daemon(load(config_path(args, required=True)), burst=getattr(args, "burst", False))


def run_daemon(
    config: Config, *, burst: bool = False, reload: Callable[[], Config] | None = None
) -> int:
    """The supervisor in the foreground until stopped; with `burst`, until every queue is
    idle (docs/operations.md#burst-mode). `reload`: what SIGHUP re-reads (default: the
    file; `naqd worker` re-applies its flags)."""
    from naqd.logs import setup_logging
    from naqd.supervisor.supervisor import Supervisor

    # Task modules import from the working directory, as with Celery, RQ and `python -m`
    # (a console script's sys.path has only its own bin directory). Spawned children and
    # the reload check inherit sys.path.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    setup_logging(config.logging, role="supervisor")
    try:
        return Supervisor(config, reload=reload, burst=burst).run()
    except (RuntimeError, FileNotFoundError) as exc:  # e.g. embedded server cannot start
        return fail(str(exc), EXIT_UNAVAILABLE)


def _json_arg(text: str) -> Any:
    """JSON when it parses, else the plain string: `naqd enqueue t hello` just works."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def cmd_enqueue(args: argparse.Namespace) -> int:
    from naqd.client import JobFailed

    try:
        kwargs = json.loads(args.kwargs)
    except json.JSONDecodeError as exc:
        return fail(f"--kwargs is not valid JSON: {exc}", EXIT_USAGE)
    if not isinstance(kwargs, dict):
        return fail("--kwargs must be a JSON object", EXIT_USAGE)

    async def go() -> int:
        async with make_client(args) as client:
            try:
                job = await client.enqueue(
                    args.task,
                    *[_json_arg(a) for a in args.args],
                    queue=args.queue,
                    job_id=args.job_id,
                    retries=args.retries,
                    timeout=args.job_timeout,
                    priority=args.priority,
                    unique_key=args.unique_key,
                    unique_for=args.unique_for,
                    unique_mode=args.unique_mode,
                    task_kwargs=kwargs,
                )
            except (ValueError, TypeError) as exc:
                return fail(str(exc), EXIT_USAGE)
            if not args.wait:
                print(json.dumps({"id": job.id, "created": job.created}) if args.json else job.id)
                return 0
            try:
                result = await job.result(timeout=args.timeout)
                out = {"id": job.id, "created": job.created, "result": result}
                out = out if args.json else result
                print(json.dumps(out, default=repr))
            except JobFailed as exc:
                print(f"{exc}\n{exc.traceback}", file=sys.stderr)
                return EXIT_FAILED
            except TimeoutError as exc:
                return fail(str(exc), EXIT_TIMEOUT)
            return 0

    return asyncio.run(go())


def cmd_result(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    async def go() -> int:
        async with make_client(args) as client:
            if args.wait:
                try:
                    rec = await client.wait(args.job_id, timeout=args.timeout)
                except TimeoutError as exc:
                    return fail(str(exc), EXIT_TIMEOUT)
            else:
                rec = await client.record(args.job_id)
            if rec is None:
                print(json.dumps({"id": args.job_id, "status": "queued"}))
                return 0
            print(json.dumps(asdict(rec), default=repr, indent=2))
            return EXIT_FAILED if rec.status == "failed" else 0

    return asyncio.run(go())


COMMANDS = {
    "run": cmd_run,
    "check": cmd_check,
    "enqueue": cmd_enqueue,
    "result": cmd_result,
}
