"""NATS connection options for long-lived processes and short-lived clients."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger
from nats.aio.client import Client as NATS

from naqd.errors import NatsAuthError
from naqd.models import NatsConfig
from naqd.transport import natsauth
from naqd.transport.throttle import ErrorThrottle


def connection_name(role: str, conn: str) -> str:
    return f"naqd/{role}/{socket.gethostname()}/{os.getpid()}/{conn}"


async def connect_daemon(
    servers: list[str],
    role: str,
    conn: str = "data",
    nats_config: NatsConfig | None = None,
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
    trusted_subjects: bool = False,
) -> NATS:
    """A daemon reconnects forever and notices a dead link in seconds, not minutes; it
    fails at once (NatsAuthError) when NATS rejects its credentials or TLS settings.
    `on_reconnect` runs after each reconnect (pull requests do not survive one).
    `trusted_subjects` skips nats-py's regex check of every subject published: for a
    worker, whose subjects are built from validated ids (two regex runs per publish,
    three publishes per job)."""
    nats_config = nats_config or NatsConfig(servers=tuple(servers))
    auth = natsauth.connect_options(nats_config)

    throttle = ErrorThrottle()

    async def on_error(exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}"
        line = throttle.line(text)
        if line is not None:
            logger.warning("nats {}: {}", conn, line)

    connected: list[NATS] = []  # the client, once connect returned

    async def on_disconnected() -> None:
        if connected and connected[0].is_closed:
            logger.debug("nats {}: closed", conn)  # our own close at shutdown
        else:
            logger.warning("nats {}: disconnected", conn)

    async def on_reconnected() -> None:
        left_out = throttle.reset()
        more = f" ({left_out} repeated error(s) not logged)" if left_out else ""
        logger.info("nats {}: reconnected{}", conn, more)
        if on_reconnect is not None:
            await on_reconnect()

    opts: dict[str, Any] = dict(
        **auth,
        name=connection_name(role, conn),
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=2,
        ping_interval=10,
        max_outstanding_pings=3,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
        allow_reconnect=True,
        skip_subject_validation=trusted_subjects,
    )
    delay = 0.1
    while True:
        try:
            nc = await natsauth.connect(
                servers, opts, tls_required=natsauth.tls_enforced(nats_config), error_cb=on_error
            )
            connected.append(nc)
            return nc
        except NatsAuthError:
            raise
        except Exception as exc:
            # A daemon waits for NATS rather than dying at boot (e.g. server still starting).
            where = [natsauth.safe_url(s) for s in servers]
            logger.warning("cannot connect to {}: {}; retrying in {:.1f}s", where, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
