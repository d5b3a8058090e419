"""The `naqd` command line: argument parsing and printing only."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

EXIT_CONFIG = 78  # EX_CONFIG, as systemd and Vector use it
EXIT_FAILED = 1
EXIT_TIMEOUT = 2


def _add_config(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--config", "-c", required=required, metavar="FILE", help="naq.yaml")


def _add_servers(p: argparse.ArgumentParser) -> None:
    _add_config(p, required=False)
    p.add_argument("--servers", metavar="URLS", help="comma-separated NATS URLs (or $NAQD_SERVERS)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="naqd", description="naqd job queue daemon")
    _add_config(parser, required=False)
    sub = parser.add_subparsers(dest="command")

    _add_config(sub.add_parser("run", help="run the daemon in the foreground"), required=True)
    _add_config(sub.add_parser("check", help="validate a config file"), required=True)

    enq = sub.add_parser("enqueue", help="enqueue a job; prints its id (or result with --wait)")
    enq.add_argument("task", help="module:function")
    enq.add_argument("args", nargs="*", help="positional arguments, each parsed as JSON")
    enq.add_argument("--kwargs", default="{}", help="keyword arguments as a JSON object")
    enq.add_argument("--queue", "-q", default="default")
    enq.add_argument("--job-id")
    enq.add_argument("--retries", type=int)
    enq.add_argument("--timeout-job", type=float, dest="job_timeout", help="job timeout (s)")
    enq.add_argument("--wait", action="store_true", help="wait for and print the result")
    enq.add_argument("--timeout", type=float, default=60.0, help="seconds to --wait")
    _add_servers(enq)

    res = sub.add_parser("result", help="print a job's result record")
    res.add_argument("job_id")
    res.add_argument("--wait", action="store_true", help="wait for the job to finish")
    res.add_argument("--timeout", type=float, default=60.0)
    _add_servers(res)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    command = args.command or ("run" if args.config else None)
    if command is None:
        build_parser().print_help()
        sys.exit(EXIT_CONFIG)
    sys.exit(COMMANDS[command](args))


def _load(path: str) -> Any:
    from naqd.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        sys.exit(EXIT_CONFIG)


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    queues = ", ".join(f"{q.name}({q.processes}x{q.concurrency})" for q in config.queues.values())
    print(f"{args.config}: OK (queues: {queues}; schedules: {len(config.schedules)})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    from naqd.logs import setup_logging
    from naqd.supervisor.supervisor import Supervisor

    setup_logging(config.logging, role="supervisor")
    return Supervisor(config).run()


def _servers(args: argparse.Namespace) -> list[str]:
    if args.servers:
        return args.servers.split(",")
    if os.environ.get("NAQD_SERVERS"):
        return os.environ["NAQD_SERVERS"].split(",")
    if args.config:
        return _load(args.config).nats.urls  # type: ignore[no-any-return]
    return ["nats://127.0.0.1:4222"]


def _json_arg(text: str) -> Any:
    """JSON when it parses, else the plain string: `naqd enqueue t hello` just works."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _serializer(args: argparse.Namespace) -> str:
    return _load(args.config).tasks.serializer if args.config else "json"  # type: ignore[no-any-return]


def cmd_enqueue(args: argparse.Namespace) -> int:
    from naqd.client import Client, JobFailed

    kwargs = json.loads(args.kwargs)
    if not isinstance(kwargs, dict):
        print("--kwargs must be a JSON object", file=sys.stderr)
        return EXIT_CONFIG

    async def go() -> int:
        async with Client(_servers(args), serializer=_serializer(args)) as client:
            job = await client.enqueue(
                args.task,
                *[_json_arg(a) for a in args.args],
                queue=args.queue,
                job_id=args.job_id,
                retries=args.retries,
                timeout=args.job_timeout,
                task_kwargs=kwargs,
            )
            if not args.wait:
                print(job.id)
                return 0
            try:
                print(json.dumps(await job.result(timeout=args.timeout), default=repr))
            except JobFailed as exc:
                print(f"{exc}\n{exc.traceback}", file=sys.stderr)
                return EXIT_FAILED
            except TimeoutError as exc:
                print(str(exc), file=sys.stderr)
                return EXIT_TIMEOUT
            return 0

    return asyncio.run(go())


def cmd_result(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from naqd.client import Client

    async def go() -> int:
        async with Client(_servers(args), serializer=_serializer(args)) as client:
            if args.wait:
                try:
                    rec = await client.wait(args.job_id, timeout=args.timeout)
                except TimeoutError as exc:
                    print(str(exc), file=sys.stderr)
                    return EXIT_TIMEOUT
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

if __name__ == "__main__":
    main()
