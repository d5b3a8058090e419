"""Creating naqd's streams, buckets and queue consumers on a test server before any
worker starts, so an application test may enqueue first (a unique job, a delayed job,
`client.queues()`) and start its worker later (docs/testing.md#preparing-a-server)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

from naqd.config import Config


async def prepare(
    url: str | None = None,
    *,
    queues: Mapping[str, Mapping[str, Any]] | None = None,
    settings: Mapping[str, Any] | None = None,
    config: str | os.PathLike[str] | Config | None = None,
) -> Config:
    """Create what a daemon creates at boot (idempotent, as `naqd init` does), for the
    queues given (default: one queue `default`) or those of `config`. Returns the
    validated configuration, which a `Worker(config=...)` can then use."""
    from nats.js.errors import APIError

    from naqd.protocol.resources import (
        ensure_rate_stream,
        ensure_resources,
        ensure_scheduler_resources,
    )
    from naqd.testing.worker import _config
    from naqd.transport.natsauth import connect, connect_options

    loaded = _config(url, (), queues, settings, config)
    opts: dict[str, Any] = {"connect_timeout": 2, "max_reconnect_attempts": 0}
    opts.update(connect_options(loaded.nats))
    nc = await asyncio.wait_for(connect(list(loaded.nats.urls), opts), 10)
    try:
        js = nc.jetstream()
        try:
            await ensure_resources(js, loaded)
            await ensure_scheduler_resources(js, loaded)
            if any(q.rate for q in loaded.queues.values()):
                await ensure_rate_stream(js, loaded)
        except APIError as exc:
            raise RuntimeError(f"NATS refused naqd's streams: {exc.description}") from exc
    finally:
        await nc.close()
    return loaded


def prepare_sync(
    url: str | None = None,
    *,
    queues: Mapping[str, Mapping[str, Any]] | None = None,
    settings: Mapping[str, Any] | None = None,
    config: str | os.PathLike[str] | Config | None = None,
) -> Config:
    """`prepare` for synchronous tests (Django's TestCase, FastAPI's TestClient); must
    not be called from a running event loop."""
    return asyncio.run(prepare(url, queues=queues, settings=settings, config=config))
