"""Server-sent events: one set of NATS watches per console process (the client's change
feeds), fanned out to every open page through a bounded queue each. A page that falls
behind loses its oldest events and is told to resync; a full house refuses new streams.
Memory is bounded by `live_clients` x QUEUE_SIZE events whatever runs for how long."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

QUEUE_SIZE = 256  # events a slow page may lag behind before it must resync
PING_EVERY = 15.0  # an SSE comment keeps proxies from closing an idle stream


class Full(Exception):
    """Every live slot is taken (`dashboard.live_clients`)."""


class Listener:
    def __init__(self, size: int = QUEUE_SIZE) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(size)
        self.dropped = 0

    def offer(self, event: dict[str, Any] | None) -> None:
        """Never blocks the feed: a full queue drops its oldest event and, once, asks
        the page to resync (it refetches what it shows)."""
        try:
            self.queue.put_nowait(event)
            return
        except asyncio.QueueFull:
            pass
        with contextlib.suppress(asyncio.QueueEmpty):
            self.queue.get_nowait()
        self.dropped += 1
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait({"type": "resync", "dropped": self.dropped})


class Broker:
    def __init__(self, max_clients: int) -> None:
        self.max_clients = max_clients
        self.listeners: set[Listener] = set()
        self.published = 0

    def open(self) -> Listener:
        if len(self.listeners) >= self.max_clients:
            raise Full(f"{self.max_clients} live pages are open (dashboard.live_clients)")
        listener = Listener()
        self.listeners.add(listener)
        return listener

    def close(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    def publish(self, event: dict[str, Any]) -> None:
        self.published += 1
        for listener in list(self.listeners):
            listener.offer(event)

    def shutdown(self) -> None:
        """End every stream (uvicorn waits for open responses when it stops)."""
        for listener in list(self.listeners):
            listener.offer(None)


async def stream(broker: Broker, listener: Listener, hello: dict[str, Any]) -> AsyncIterator[str]:
    """One page's event stream, in SSE framing; ends when the broker shuts down."""
    try:
        yield frame(hello)
        while True:
            try:
                event = await asyncio.wait_for(listener.queue.get(), PING_EVERY)
            except TimeoutError:
                yield ": ping\n\n"
                continue
            if event is None:
                return
            yield frame(event)
    finally:
        broker.close(listener)


def frame(event: dict[str, Any]) -> str:
    kind = str(event.get("type", "message"))
    data = json.dumps(event, separators=(",", ":"), default=str)
    return f"event: {kind}\ndata: {data}\n\n"
