"""`naqd init --config naq.yaml`: create or update naqd's streams, consumers and buckets
without starting any worker, for deploy pipelines and producers that start first."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from naqd.cli.common import (
    EXIT_CONFIG,
    EXIT_UNAVAILABLE,
    add_servers,
    config_path,
    connect_once,
    load,
    print_json,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init", help="create or update streams, consumers and buckets; starts no worker"
    )
    add_servers(p)
    p.add_argument("--json", action="store_true", help="what exists now, as JSON")


def cmd_init(args: argparse.Namespace) -> int:
    from nats.js.errors import APIError

    from naqd.protocol.resources import (
        ensure_audit_stream,
        ensure_rate_stream,
        ensure_resources,
        ensure_scheduler_resources,
        refused_by_config,
    )

    config = load(config_path(args, required=True))  # type: ignore[arg-type]

    async def go() -> int:
        nc = await connect_once(args)
        try:
            js = nc.jetstream()
            try:
                # The same calls the daemon's children make at boot (idempotent).
                await ensure_resources(js, config)
                await ensure_scheduler_resources(js, config)
                await ensure_audit_stream(js, config)  # the console's boot does too
                if any(q.rate for q in config.queues.values()):
                    await ensure_rate_stream(js, config)
            except APIError as exc:
                print(
                    f"NATS refused naqd's streams: {exc.description} (error {exc.err_code})",
                    file=sys.stderr,
                )
                return EXIT_CONFIG if refused_by_config(exc) else EXIT_UNAVAILABLE
            made = await _inventory(js)
        finally:
            await nc.drain()
        if args.json:
            print_json(made)
        else:
            print(
                f"ready: {len(made['streams'])} streams, {len(made['consumers'])} queue "
                f"consumers ({', '.join(made['consumers'])})"
            )
        return 0

    return asyncio.run(go())


async def _inventory(js: Any) -> dict[str, list[str]]:
    from naqd.protocol.names import JOBS_STREAM, consumer_name

    streams = sorted([s.config.name for s in await js.streams_info()])
    queue_consumer = consumer_name("")
    consumers = sorted(
        c.name for c in await js.consumers_info(JOBS_STREAM) if c.name.startswith(queue_consumer)
    )
    return {"streams": streams, "consumers": consumers}


COMMANDS = {"init": cmd_init}
