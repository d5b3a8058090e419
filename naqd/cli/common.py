"""Helpers shared by the command modules: exit codes, config and server lookup."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from naqd.client import Client
    from naqd.config import Config

# Exit codes, the same for every command (docs/operations.md#exit-codes).
EXIT_CONFIG = 78  # EX_CONFIG, as systemd and Vector use it
EXIT_FAILED = 1  # the operation or the job failed
EXIT_TIMEOUT = 2  # --wait ran out
EXIT_NOT_FOUND = 3  # no such job, queue, dead letter, delayed job or schedule
EXIT_USAGE = 64  # EX_USAGE: bad arguments, or a confirmation refused
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: NATS unreachable, publish not confirmed
EXIT_PIPE = 141  # 128 + SIGPIPE: the reader of our output went away (`| head`)


def confirm(question: str, yes: bool) -> int | None:
    """None to go ahead; else the exit code. Without a terminal only `--yes` proceeds."""
    if yes:
        return None
    if not sys.stdin.isatty():
        print("refusing without --yes (stdin is not a terminal)", file=sys.stderr)
        return EXIT_USAGE
    if input(f"{question} [y/N] ").strip().lower() in ("y", "yes"):
        return None
    print("nothing done", file=sys.stderr)
    return EXIT_USAGE


def print_json(data: Any) -> None:
    import json

    print(json.dumps(data, indent=2, default=str))


def fail(message: str, code: int) -> int:
    print(f"naqd: {message}", file=sys.stderr)
    return code


def add_config(p: argparse.ArgumentParser, required: bool = False) -> None:
    """--config is accepted before or after the command (`naqd --config F check`): the
    subcommand's option must not overwrite the top-level value with its default."""
    p.add_argument(
        "--config", "-c", metavar="FILE", default=argparse.SUPPRESS,
        help="naq.yaml" + (" (required)" if required else ""),
    )  # fmt: skip


def config_path(args: argparse.Namespace, required: bool = False) -> str | None:
    path = getattr(args, "config", None)
    if required and not path:
        print(f"naqd {args.command}: --config FILE is required", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    return path


def add_servers(p: argparse.ArgumentParser) -> None:
    """Commands that talk to NATS find it from --servers, $NAQD_SERVERS or --config."""
    add_config(p, required=False)
    p.add_argument("--servers", metavar="URLS", help="comma-separated NATS URLs (or $NAQD_SERVERS)")
    p.add_argument(
        "--connect-timeout", type=float, default=5.0, metavar="S",
        help="give up when NATS does not answer within S seconds (default 5)",
    )  # fmt: skip


def load(path: str) -> Config:
    from naqd.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        sys.exit(EXIT_CONFIG)


def servers(args: argparse.Namespace) -> list[str]:
    if getattr(args, "servers", None):
        return str(args.servers).split(",")
    if os.environ.get("NAQD_SERVERS"):
        return os.environ["NAQD_SERVERS"].split(",")
    path = config_path(args)
    if path:
        return load(path).nats.urls
    return ["nats://127.0.0.1:4222"]


def serializer(args: argparse.Namespace) -> str:
    path = config_path(args)
    return load(path).tasks.serializer if path else "json"


def client(args: argparse.Namespace) -> Client:
    """A client from --config (credentials, TLS, signing key) or from plain URLs; exits
    with EXIT_CONFIG when the key file or credentials cannot be read."""
    from naqd.client import Client
    from naqd.client.errors import NatsAuthError

    deadline = getattr(args, "connect_timeout", 10.0)
    path = config_path(args)
    if not path:
        return Client(servers(args), connect_deadline=deadline)
    try:
        made = Client.from_config(load(path), connect_deadline=deadline)
    except (NatsAuthError, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    if getattr(args, "servers", None) or os.environ.get("NAQD_SERVERS"):
        made.servers = servers(args)
    return made


def auth_options(args: argparse.Namespace) -> dict[str, Any]:
    """Credentials and TLS from --config for commands that talk to NATS directly."""
    from naqd import natsauth

    path = config_path(args)
    return natsauth.connect_options(load(path).nats) if path else {}


async def connect_once(args: argparse.Namespace) -> Any:
    """One connection for a command (no endless reconnects: this is not a daemon); a
    one-line error and exit 69 when NATS cannot be reached within --connect-timeout."""
    import asyncio

    import nats

    urls = servers(args)

    async def quiet(exc: Exception) -> None:
        pass

    try:
        return await asyncio.wait_for(
            nats.connect(
                servers=urls,
                connect_timeout=2,
                allow_reconnect=False,
                max_reconnect_attempts=1,  # 0 would mean "forever" at connect
                reconnect_time_wait=0.2,
                error_cb=quiet,
                **auth_options(args),
            ),
            getattr(args, "connect_timeout", 5.0),
        )
    except Exception as exc:
        print(
            f"cannot reach NATS at {', '.join(urls)}: {exc or type(exc).__name__}", file=sys.stderr
        )
        sys.exit(EXIT_UNAVAILABLE)
