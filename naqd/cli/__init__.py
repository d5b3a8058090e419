"""The `naqd` command line: one module per command group, each with `register` and
`COMMANDS`; argument parsing and printing only, the logic lives elsewhere."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from types import ModuleType

from naqd.cli import core, dlq
from naqd.cli.common import EXIT_CONFIG, add_config

# Add a command group by appending its module here.
GROUPS: list[ModuleType] = [core, dlq]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[..., int]]]:
    parser = argparse.ArgumentParser(prog="naqd", description="naqd job queue daemon")
    add_config(parser, required=False)
    sub = parser.add_subparsers(dest="command")
    commands: dict[str, Callable[..., int]] = {}
    for group in GROUPS:
        group.register(sub)
        commands.update(group.COMMANDS)
    return parser, commands


def main(argv: list[str] | None = None) -> None:
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    command = args.command or ("run" if args.config else None)
    if command is None:
        parser.print_help()
        sys.exit(EXIT_CONFIG)
    sys.exit(commands[command](args))
