"""NATS connection options for long-lived processes and short-lived clients."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from loguru import logger
from nats.aio.client import Client as NATS


def connection_name(role: str, conn: str) -> str:
    return f"naqd/{role}/{socket.gethostname()}/{os.getpid()}/{conn}"


async def connect_daemon(
    servers: list[str],
    role: str,
    conn: str = "data",
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
) -> NATS:
    """A daemon reconnects forever and notices a dead link in seconds, not minutes.
    `on_reconnect` runs after each reconnect (pull requests do not survive one)."""

    async def on_error(exc: Exception) -> None:
        logger.warning("nats {}: {}", conn, exc)

    async def on_disconnected() -> None:
        logger.warning("nats {}: disconnected", conn)

    async def on_reconnected() -> None:
        logger.info("nats {}: reconnected", conn)
        if on_reconnect is not None:
            await on_reconnect()

    opts: dict[str, Any] = dict(
        servers=servers,
        name=connection_name(role, conn),
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=2,
        ping_interval=10,
        max_outstanding_pings=3,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
        allow_reconnect=True,
    )
    delay = 0.1
    while True:
        try:
            return await nats.connect(**opts)
        except Exception as exc:
            # A daemon waits for NATS rather than dying at boot (e.g. server still starting).
            logger.warning("cannot connect to {}: {}; retrying in {:.1f}s", servers, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
