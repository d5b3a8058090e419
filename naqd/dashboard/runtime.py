"""What the web app holds while it runs: the config, the NATS connection (or its absence
during an outage), the client the actions go through, and the live broker fed by the
client's change feeds. The app asks `ready()`; everything else is the client's."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from pathlib import Path
from typing import Any

from loguru import logger
from nats.aio.client import Client as NATS

from naqd.client.client import Client
from naqd.dashboard.auth import LoginLimiter
from naqd.dashboard.live import Broker
from naqd.models import Config, DashboardConfig
from naqd.transport.cancelling import cancel_and_wait


class Unavailable(Exception):
    """NATS cannot be reached right now: the API answers 503, pages show a banner."""


class Console:
    def __init__(self, config: Config, dash: DashboardConfig) -> None:
        self.config = config
        self.dash = dash
        self.key = session_key(dash)
        self.limiter = LoginLimiter(dash.login_attempts)
        self.broker = Broker(dash.live_clients)
        self.client: Client | None = None
        self.started_at = time.time()
        self._tasks: list[asyncio.Task[Any]] = []
        self._was_up = False

    @property
    def nc(self) -> NATS | None:
        return self.client._nc if self.client is not None else None

    @property
    def up(self) -> bool:
        nc = self.nc
        return nc is not None and nc.is_connected

    def ready(self) -> Client:
        """The client, or Unavailable while NATS is down (or not reached yet)."""
        if self.client is None or not self.up:
            raise Unavailable("NATS is unreachable: the console shows nothing current")
        return self.client

    async def attach(self, nc: NATS) -> None:
        """Serve on `nc` (reconnecting forever, naqd/transport/connection.py): the
        client for reads and actions, and the change feeds into the broker."""
        self.client = await Client.from_config(self.config, nc=nc).connect()
        await self._ensure_audit(nc)
        # The id index of queued jobs: an id search or a queued job's detail is a lookup.
        await self.client.explorer.start()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._feed()))
        self._tasks.append(loop.create_task(self._watch_link()))

    async def _ensure_audit(self, nc: NATS) -> None:
        """The audit trail with the configured retention and replicas (an R1 stream
        left by a client's fallback is scaled up): on a cluster, the actions of an
        operator stay recorded when a node is lost. Best effort: the console serves
        without it, and the first action's append creates it."""
        from naqd.protocol.resources import ensure_audit_stream

        try:
            await ensure_audit_stream(nc.jetstream(), self.config)
        except Exception as exc:
            logger.warning("audit stream not applied: {!r}", exc)

    async def _feed(self) -> None:
        """The client's change feeds into the broker, restarted after an outage."""
        from naqd.dashboard import backend

        while True:
            try:
                assert self.client is not None
                async for event in backend.changes(self.client):
                    self.broker.publish(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("live feed ended: {!r}; restarting", exc)
            await asyncio.sleep(1.0)

    async def _watch_link(self) -> None:
        """Tell open pages when NATS goes away and comes back (the banner)."""
        while True:
            up = self.up
            if up != self._was_up:
                self._was_up = up
                self.broker.publish({"type": "nats", "up": up})
                if up:
                    logger.info("dashboard: NATS reachable")
                else:
                    logger.warning("dashboard: NATS unreachable; pages show a banner")
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        self.broker.shutdown()
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.explorer.close()


def session_key(dash: DashboardConfig) -> bytes:
    """The cookie-signing key: configured (sessions survive restarts and are shared by
    every console behind one balancer), else random for this process."""
    if dash.secret_key:
        return dash.secret_key.encode()
    if dash.secret_key_file:
        with contextlib.suppress(OSError):
            return Path(dash.secret_key_file).read_text().strip().encode()
        raise ValueError(f"dashboard.secret_key_file {dash.secret_key_file}: cannot be read")
    return secrets.token_bytes(32)
