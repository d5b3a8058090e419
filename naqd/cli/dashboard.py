"""`naqd dashboard`: the web console on its own (an operator's laptop against a cluster),
and `naqd dashboard hash-password` for `dashboard.users`. Under `naqd run` the console
is a supervised child instead (a `dashboard:` section, docs/dashboard.md)."""

from __future__ import annotations

import argparse
import getpass
import sys
from dataclasses import replace

from naqd.cli.common import EXIT_CONFIG, EXIT_USAGE, add_servers, config_path, fail, load, servers


def register(sub: argparse._SubParsersAction) -> None:
    dash = sub.add_parser("dashboard", help="run the web console (docs/dashboard.md)")
    add_servers(dash)
    dash.add_argument("--listen", metavar="HOST:PORT", help="where to serve (default: "
                      "dashboard.listen, else 127.0.0.1:9465)")  # fmt: skip
    dash.add_argument("--host", help="as NAQ's `naq dashboard --host` (with --port)")
    dash.add_argument("--port", type=int, help="as NAQ's `naq dashboard --port`")
    inner = dash.add_subparsers(dest="dashboard_command")
    hp = inner.add_parser(
        "hash-password", help="print a password hash for dashboard.users.<name>.password_hash"
    )
    hp.add_argument(
        "--stdin", action="store_true", help="read the password from stdin (one line), no prompt"
    )


def cmd_dashboard(args: argparse.Namespace) -> int:
    if getattr(args, "dashboard_command", None) == "hash-password":
        return hash_password(args)
    from naqd.config.checks import host_port
    from naqd.dashboard.auth import listen_refusal
    from naqd.logs import setup_logging
    from naqd.models import Config, DashboardConfig, NatsConfig

    path = config_path(args)
    config = load(path) if path else Config(path="<flags>")
    if getattr(args, "servers", None) or not path:
        config = replace(config, nats=replace(config.nats, servers=tuple(servers(args))))
    dash = config.dashboard or DashboardConfig()
    listen = args.listen
    if listen is None and (args.host or args.port):
        default_host, _, default_port = dash.listen.rpartition(":")
        host = args.host or default_host
        listen = f"[{host}]:{args.port or default_port}" if ":" in host else (
            f"{host}:{args.port or default_port}"
        )  # fmt: skip
    listen = listen or dash.listen
    try:
        host_port(listen)
    except ValueError as exc:
        return fail(f"--listen: {exc}", EXIT_USAGE)
    refusal = listen_refusal(dash, listen)
    if refusal:
        return fail(refusal, EXIT_CONFIG)
    config = replace(config, dashboard=replace(dash, listen=listen))
    assert isinstance(config.nats, NatsConfig)
    setup_logging(config.logging, role="dashboard")
    from naqd.dashboard.server import run_standalone

    return run_standalone(config, listen)


def hash_password(args: argparse.Namespace) -> int:
    from naqd.dashboard.auth import hash_password as make_hash

    if args.stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            return fail("the two passwords differ", EXIT_USAGE)
    if not password:
        return fail("an empty password is not allowed", EXIT_USAGE)
    print(make_hash(password))
    return 0


COMMANDS = {"dashboard": cmd_dashboard}
