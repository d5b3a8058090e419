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
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
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
    enq.add_argument("--queue", "-q", help="queue (default: the task's own queue, else 'default')")
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
    from naqd.observe.durability import durability_warnings

    path = config_path(args, required=True)
    config = load(path)
    # Valid either way (exit 0): a warning says where a power cut can lose jobs.
    warnings = durability_warnings(config.nats)
    if args.json:
        print_json(
            {
                "config": path,
                "ok": True,
                "queues": {
                    q.name: {"processes": q.processes, "concurrency": q.concurrency}
                    for q in config.queues.values()
                },
                "pools": {
                    p.name: {"processes": p.processes, "queues": list(p.queues)}
                    for p in config.pools.values()
                },
                "schedules": sorted(config.schedules),
                "warnings": warnings,
            }
        )
        return 0
    print(f"{path}: OK ({summary(config)})")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def summary(config: Config) -> str:
    """`pools: small(2x: default 16, emails 8); queues: video(2x2); schedules: 1`: each
    process count times the slots of each queue."""
    parts = []
    if config.pools:
        pools = ", ".join(
            f"{p.name}({p.processes}x: "
            + ", ".join(f"{q} {config.queues[q].concurrency}" for q in p.queues)
            + ")"
            for p in config.pools.values()
        )
        parts.append(f"pools: {pools}")
    solo = [q for q in config.queues.values() if config.pool_of(q.name) is None]
    if solo or not config.pools:
        parts.append(
            "queues: " + ", ".join(f"{q.name}({q.processes}x{q.concurrency})" for q in solo)
        )
    parts.append(f"schedules: {len(config.schedules)}")
    return "; ".join(parts)


def cmd_run(args: argparse.Namespace) -> int:
    from naqd.config import ConfigError
    from naqd.config.flags import run_config

    path = config_path(args, required=True)

    def build() -> Config:  # again on SIGHUP: $NAQD_SERVERS still applies
        return run_config(path, os.environ)

    try:
        config = build()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    return run_daemon(config, burst=getattr(args, "burst", False), reload=build)


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
    from naqd.client import JobFailed, QueueNotFound

    try:
        kwargs = json.loads(args.kwargs)
    except json.JSONDecodeError as exc:
        return fail(f"--kwargs is not valid JSON: {exc}", EXIT_USAGE)
    if not isinstance(kwargs, dict):
        return fail("--kwargs must be a JSON object", EXIT_USAGE)

    _import_task_module(args.task)

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
            except QueueNotFound as exc:  # a typo'd --queue: the message has a did-you-mean
                return fail(str(exc), EXIT_NOT_FOUND)
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


def _import_task_module(task: str) -> None:
    """Import the task's module from the working directory, as a worker would, so the
    task's own options (@naqd.task: its queue, priority, unique_for) and its signature
    apply here too. A module this machine lacks is fine: the job goes out by name."""
    import importlib

    module = task.partition(":")[0]
    if not module or ":" not in task:
        return  # the client refuses the name itself
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module != missing and not module.startswith(missing + "."):
            print(f"note: importing {module} failed ({exc}); enqueueing by name", file=sys.stderr)
    except Exception as exc:
        print(f"note: importing {module} failed ({exc}); enqueueing by name", file=sys.stderr)


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
