"""`naqd worker [QUEUE ...]`: the daemon of `naqd run` on a configuration built from
flags (optionally over a file), for development, a container's command or an extra
worker; `--print-config` turns the command line into the equivalent naq.yaml."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from naqd.cli.common import EXIT_CONFIG, add_config, config_path, fail

if TYPE_CHECKING:
    from naqd.config.flags import WorkerConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker",
        help="run workers from flags, without a config file",
        description="Run the naqd daemon (as `naqd run`) on the defaults plus these flags; "
        "with --config, the flags override the file for the queues named.",
    )
    p.add_argument(
        "queues", nargs="*", metavar="QUEUE",
        help="queues to serve (default: the file's queues, else `default`); several "
        "named share each worker process (a pool)",
    )  # fmt: skip
    p.add_argument(
        "--import", dest="imports", action="append", default=[], metavar="MODULE",
        help="task module to import (repeatable; added to the file's tasks.imports)",
    )  # fmt: skip
    p.add_argument(
        "--concurrency", metavar="N", help="jobs at once per queue in each process (default 16)"
    )
    p.add_argument(
        "--processes", metavar="N",
        help="worker processes (default 1); with several queues named, each serves them all",
    )  # fmt: skip
    p.add_argument(
        "--servers", metavar="URLS",
        help="comma-separated NATS URLs (else $NAQD_SERVERS, the file's, or an embedded server)",
    )  # fmt: skip
    p.add_argument("--scheduler", action="store_true", help="also run the scheduler (default off)")
    p.add_argument(
        "--burst", action="store_true",
        help="run queued jobs until every queue served is idle, then exit 0 (as run --burst)",
    )  # fmt: skip
    p.add_argument(
        "--print-config", action="store_true",
        help="print the equivalent naq.yaml and exit (it passes `naqd check`)",
    )  # fmt: skip
    add_config(p)


def _build(args: argparse.Namespace) -> tuple[WorkerConfig, Callable[[], WorkerConfig]]:
    """The configuration now, and how to build it again on SIGHUP; exit 78 on errors."""
    from naqd.config import ConfigError
    from naqd.config.flags import WorkerFlags, worker_config
    from naqd.config.loader import read_config_text

    flags = WorkerFlags(
        queues=tuple(args.queues),
        imports=tuple(args.imports),
        concurrency=args.concurrency,
        processes=args.processes,
        servers=args.servers,
        scheduler=args.scheduler,
    )
    path = config_path(args)

    def build() -> WorkerConfig:
        text = read_config_text(path) if path else None
        return worker_config(flags, os.environ, text, path)

    try:
        return build(), build
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        sys.exit(EXIT_CONFIG)


def cmd_worker(args: argparse.Namespace) -> int:
    built, rebuild = _build(args)
    if args.print_config:
        print("# from naqd worker --print-config; run it with: naqd run --config FILE")
        print(built.to_yaml(), end="")
        return 0
    if args.burst and args.scheduler:
        # A burst runs no scheduler (`naqd run --burst`): saying both is a mistake.
        return fail(
            "naqd worker: --burst: a burst runs no scheduler; drop --scheduler", EXIT_CONFIG
        )
    from naqd.cli.core import run_daemon

    # SIGHUP re-reads the file (if any) and applies the same flags again.
    return run_daemon(built.config, burst=args.burst, reload=lambda: rebuild().config)


COMMANDS = {"worker": cmd_worker}
