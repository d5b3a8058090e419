"""Helpers shared by the command modules: exit codes, config and server lookup."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

# Re-exported for the command modules; every exit code is defined in naqd/exitcodes.py.
from naqd.exitcodes import (  # noqa: F401
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_PIPE,
    EXIT_TIMEOUT,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)

if TYPE_CHECKING:
    from naqd.client import Client
    from naqd.config import Config

# Top-level modules of the `daemon` extra (pyproject.toml). In a client-only install a
# command that needs one of them (run, check, any --config FILE) exits EXIT_CONFIG.
DAEMON_MODULES = frozenset(
    {"yaml", "croniter", "uvloop", "prometheus_client", "loguru", "cloudpickle"}
)


# ... and of the `dashboard` extra (`naqd dashboard`).
DASHBOARD_MODULES = frozenset({"starlette", "uvicorn", "jinja2", "markupsafe"})


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The one line to print when `exc` is a module of the daemon extra, else None."""
    name = (exc.name or "").partition(".")[0]
    if name in DASHBOARD_MODULES:
        return (
            f"this needs naqd's dashboard extra ({name} is not installed): "
            "pip install 'naqd[dashboard]'"
        )
    if name not in DAEMON_MODULES:
        return None
    return f"this needs naqd's daemon extra ({name} is not installed): pip install 'naqd[daemon]'"


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
    from naqd.transport import natsauth

    path = config_path(args)
    return natsauth.connect_options(load(path).nats) if path else {}


async def connect_once(args: argparse.Namespace) -> Any:
    """One connection for a command (no endless reconnects: this is not a daemon); a
    one-line error and exit 69 when NATS cannot be reached within --connect-timeout."""
    import asyncio

    import nats

    urls = servers(args)
    options = auth_options(args)  # outside the try: a bad config is not "unreachable"

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
                **options,
            ),
            getattr(args, "connect_timeout", 5.0),
        )
    except Exception as exc:
        print(
            f"cannot reach NATS at {', '.join(urls)}: {exc or type(exc).__name__}", file=sys.stderr
        )
        sys.exit(EXIT_UNAVAILABLE)
