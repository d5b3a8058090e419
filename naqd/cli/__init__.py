"""The `naqd` command line: one module per command group, each with `register` and
`COMMANDS`; argument parsing and printing only, the logic lives elsewhere."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from types import ModuleType

from naqd import __version__
from naqd.cli import audit, core, dlq, ops, provision, schedules, worker
from naqd.cli.common import (
    EXIT_CONFIG,
    EXIT_PIPE,
    EXIT_UNAVAILABLE,
    add_config,
    fail,
    missing_extra,
)
from naqd.client.errors import NaqdError, NatsAuthError

# Add a command group by appending its module here.
GROUPS: list[ModuleType] = [core, worker, schedules, dlq, ops, provision, audit]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[..., int]]]:
    parser = argparse.ArgumentParser(prog="naqd", description="naqd job queue daemon")
    add_config(parser)
    parser.add_argument("--version", action="version", version=f"naqd {__version__}")
    sub = parser.add_subparsers(dest="command")
    commands: dict[str, Callable[..., int]] = {}
    for group in GROUPS:
        group.register(sub)
        commands.update(group.COMMANDS)
    return parser, commands


def main(argv: list[str] | None = None) -> None:
    parser, commands = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # --help, --version or a usage error, printed: flush it while we can
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_pipe()
        raise
    command = args.command or ("run" if getattr(args, "config", None) else None)
    if command is None:
        parser.print_help()
        sys.exit(EXIT_CONFIG)
    args.command = command
    # Reconnect chatter would bury the one line the CLI prints on failure.
    logging.getLogger("naqd.client").setLevel(logging.ERROR)
    try:
        code = commands[command](args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        sys.exit(code)
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
    except BrokenPipeError:
        _quiet_pipe()


def _quiet_pipe() -> None:
    """The reader went away (`naqd dlq list | head -1`): stop without a traceback, and
    keep the interpreter's final flush of stdout from raising again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(EXIT_PIPE)
