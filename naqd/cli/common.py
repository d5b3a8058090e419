"""Helpers shared by the command modules: exit codes, config and server lookup."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from naqd.client import Client
    from naqd.config import Config

EXIT_CONFIG = 78  # EX_CONFIG, as systemd and Vector use it
EXIT_FAILED = 1
EXIT_TIMEOUT = 2


def add_config(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--config", "-c", required=required, metavar="FILE", help="naq.yaml")


def add_servers(p: argparse.ArgumentParser) -> None:
    """Commands that talk to NATS find it from --servers, $NAQD_SERVERS or --config."""
    add_config(p, required=False)
    p.add_argument("--servers", metavar="URLS", help="comma-separated NATS URLs (or $NAQD_SERVERS)")


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
    if args.config:
        return load(args.config).nats.urls
    return ["nats://127.0.0.1:4222"]


def serializer(args: argparse.Namespace) -> str:
    return load(args.config).tasks.serializer if args.config else "json"


def client(args: argparse.Namespace) -> Client:
    """A client from --config (credentials, TLS, signing key) or from plain URLs; exits
    with EXIT_CONFIG when the key file or credentials cannot be read."""
    from naqd.client import Client
    from naqd.client.errors import NatsAuthError

    if not args.config:
        return Client(servers(args))
    try:
        made = Client.from_config(load(args.config))
    except (NatsAuthError, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    if getattr(args, "servers", None) or os.environ.get("NAQD_SERVERS"):
        made.servers = servers(args)
    return made
