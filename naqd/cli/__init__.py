"""The `naqd` command line: one module per command group, each with `register` and
`COMMANDS`; argument parsing and printing only, the logic lives elsewhere."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from types import ModuleType

from naqd.cli import core, dlq, ops, schedules, worker
from naqd.cli.common import EXIT_CONFIG, EXIT_UNAVAILABLE, add_config, fail, missing_extra
from naqd.client.errors import NaqdError, NatsAuthError

# Add a command group by appending its module here.
GROUPS: list[ModuleType] = [core, worker, schedules, dlq, ops]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[..., int]]]:
    parser = argparse.ArgumentParser(prog="naqd", description="naqd job queue daemon")
    add_config(parser)
    sub = parser.add_subparsers(dest="command")
    commands: dict[str, Callable[..., int]] = {}
    for group in GROUPS:
        group.register(sub)
        commands.update(group.COMMANDS)
    return parser, commands


def main(argv: list[str] | None = None) -> None:
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    command = args.command or ("run" if getattr(args, "config", None) else None)
    if command is None:
        parser.print_help()
        sys.exit(EXIT_CONFIG)
    args.command = command
    # Reconnect chatter would bury the one line the CLI prints on failure.
    logging.getLogger("naqd.client").setLevel(logging.ERROR)
    try:
        sys.exit(commands[command](args))
    except NatsAuthError as exc:
        # Credentials or TLS rejected: a configuration problem, not an outage.
        sys.exit(fail(str(exc), EXIT_CONFIG))
    except NaqdError as exc:
        # Expected failures (NATS unreachable, publish not confirmed): a line, no traceback.
        sys.exit(fail(str(exc), EXIT_UNAVAILABLE))
    except ModuleNotFoundError as exc:
        # A client-only install (`pip install naqd`): one line naming the extra.
        line = missing_extra(exc)
        if line is None:
            raise
        sys.exit(fail(f"{command}: {line}", EXIT_CONFIG))
    except KeyboardInterrupt:
        sys.exit(130)
