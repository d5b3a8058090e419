"""Cluster-wide rate limit of one queue (`rate: 20/s`), on JetStream counters.

Time is cut into windows of `tokens / rate` seconds, numbered since the Unix epoch, so
every host agrees on them (given NTP-synchronised clocks). Before a job starts, its
worker increments the window's counter (`Nats-Incr: +1` on `naqd.rate.<queue>.<window>`);
the server returns the new count atomically, and a count above the window's tokens
means "wait for the next window and try again". Windows are short (about 0.1 s), so the
rate holds closely over any second, without a burst at a window boundary beyond one
window's tokens."""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass
from typing import Any

from loguru import logger

from naqd.config import Config, QueueConfig
from naqd.protocol.names import HDR_INCR, rate_subject
from naqd.protocol.resources import ensure_rate_stream

TARGET_WINDOW = 0.1  # seconds; short windows keep bursts small


@dataclass(frozen=True)
class Plan:
    window: float  # seconds
    tokens: int  # jobs that may start per window


def plan(rate: float) -> Plan:
    """Whole tokens per window, windows near 0.1 s: 20/s -> 2 per 0.1 s; 1000/m -> 2 per
    0.12 s; 1/m -> 1 per 60 s."""
    tokens = max(1, math.ceil(rate * TARGET_WINDOW))
    return Plan(window=tokens / rate, tokens=tokens)


def window_of(now: float, p: Plan) -> int:
    # Whole microseconds: float division puts 1000.0 / 0.1 in window 9999.
    return round(now * 1_000_000) // round(p.window * 1_000_000)


class RateLimiter:
    def __init__(self, js: Any, queue: str, rate: float) -> None:
        self.js = js
        self.queue = queue
        self.plan = plan(rate)
        self.waited = 0  # times a job had to wait for a later window

    async def acquire(self) -> None:
        p = self.plan
        while True:
            window = window_of(time.time(), p)
            ack = await self.js.publish(
                rate_subject(self.queue, window), b"", headers={HDR_INCR: "+1"}
            )
            if int(getattr(ack, "val", None) or 0) <= p.tokens:
                return
            self.waited += 1
            # Sleep into the next window; a little spread keeps waiters from colliding.
            delay = (window + 1) * p.window - time.time()
            await asyncio.sleep(max(0.0, delay) + random.uniform(0, p.window * 0.05))


async def open_rate_limiter(js: Any, config: Config, queue: QueueConfig) -> RateLimiter | None:
    """The queue's limiter, or None when it has no `rate` (or the server is too old to
    count: then the queue runs unlimited, and says so)."""
    if not queue.rate:
        return None
    if await ensure_rate_stream(js, config):
        return RateLimiter(js, queue.name, queue.rate)
    logger.error(
        "queue {}: rate limits need nats-server 2.12 or newer; running unlimited", queue.name
    )
    return None
