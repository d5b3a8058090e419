"""Noticing at once that a queue was paused or resumed, so a worker process that holds
jobs waiting for a slot (prefetch, docs/configuration.md) hands them back instead of
starting them. The server announces every pause and resume of a consumer as an advisory
(core NATS); a pause with an end time ends by itself, so its end is scheduled here too.
An advisory lost to a reconnect is made up for by reading the consumers' state again."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from loguru import logger
from nats.aio.client import Client as NATS

from naqd.protocol.names import JOBS_STREAM, pause_advisory_subject


def paused_from(payload: bytes, now: datetime) -> tuple[bool, float | None]:
    """(paused now, seconds until a timed pause ends or None) from an advisory; pure.
    An unreadable advisory reads as "not paused": a missed pause only delays the
    hand-back, a false one would stall the queue."""
    try:
        doc = json.loads(payload)
        paused = bool(doc.get("paused"))
        until_text = doc.get("pause_until")
    except (ValueError, AttributeError):
        return False, None
    if not paused:
        return False, None
    until = _parse(until_text)
    if until is None:
        return True, None
    left = (until - now).total_seconds()
    return (left > 0), (left if left > 0 else None)


def _parse(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class PauseWatch:
    """Calls `on_change(paused)` when the queue's consumers (all its levels) are paused
    or resumed. `paused` is true while any of them is."""

    def __init__(self, nc: NATS, consumers: list[str], on_change: Callable[[bool], None]) -> None:
        self.nc = nc
        self.consumers = consumers
        self.on_change = on_change
        self.paused: set[str] = set()
        self._subs: list[Any] = []
        self._timers: dict[str, asyncio.TimerHandle] = {}

    @property
    def any_paused(self) -> bool:
        return bool(self.paused)

    async def start(self) -> None:
        for consumer in self.consumers:
            sub = await self.nc.subscribe(pause_advisory_subject(consumer), cb=self._on_advisory)
            self._subs.append(sub)
        await self.resync()

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()

    async def resync(self) -> None:
        """Read the consumers' pause state (at start, and after a reconnect)."""
        js = self.nc.jetstream()
        now = datetime.now(UTC)
        for consumer in self.consumers:
            try:
                info = await js.consumer_info(JOBS_STREAM, consumer)
            except Exception as exc:
                logger.debug("pause state of {}: {}", consumer, exc)
                continue
            until = _parse(getattr(info.config, "pause_until", None))
            paused = bool(getattr(info, "paused", False)) and (until is None or until > now)
            left = (until - now).total_seconds() if paused and until is not None else None
            self._set(consumer, paused, left)

    async def _on_advisory(self, msg: Any) -> None:
        consumer = msg.subject.rsplit(".", 1)[-1]
        paused, left = paused_from(msg.data, datetime.now(UTC))
        self._set(consumer, paused, left)

    def _set(self, consumer: str, paused: bool, left: float | None) -> None:
        before = self.any_paused
        timer = self._timers.pop(consumer, None)
        if timer is not None:
            timer.cancel()
        if paused:
            self.paused.add(consumer)
            if left is not None:
                loop = asyncio.get_running_loop()
                self._timers[consumer] = loop.call_later(left, self._set, consumer, False, None)
        else:
            self.paused.discard(consumer)
        if self.any_paused != before:
            self.on_change(self.any_paused)
