"""Live change feeds for the console's server-sent events, fed by NATS itself: core
subscriptions on the subjects JetStream stores (result records, heartbeats, schedule
state, dead letters, audit entries), the `naqd.done.>` notices and the server's consumer
pause advisories. No consumer is created and nothing is polled.

Memory is bounded: events are coalesced by (kind, key), so a job that is written twice
while the reader is busy is one event with its newest state, and at most `max_pending`
keys wait; past that the oldest are dropped and the reader gets one `resync` event (its
cue to reload the page's data), never an unbounded backlog."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NATS

from naqd.client.faults import guard
from naqd.protocol.names import (
    AUDIT_SUBJECT_PREFIX,
    DLQ_SUBJECT_PREFIX,
    HEARTBEATS_BUCKET,
    RESULTS_BUCKET,
    SCHEDULES_BUCKET,
    consumer_pause_advisories,
    dlq_queue,
    done_filter,
    kv_subject,
    under,
)

# What each kind means, and its `data`:
#   job         a job's record changed: {"id", "status", "queue", "task", "progress"}
#   worker      a heartbeat: {"key", "host", "role", "pid", "queues", "running", "gone"}
#   dead_letter a new dead letter: {"id", "queue", "task", "reason", "error"}
#   queue       a queue paused or resumed: {"queue", "paused"}
#   schedule    schedule state changed (fired, paused, code definition): {"key"}
#   audit       an operator action: the audit entry
#   resync      events were dropped (the reader was too slow): reload
KINDS = ("job", "worker", "dead_letter", "queue", "schedule", "audit")
MAX_PENDING = 2_000
PENDING_BYTES = 8 * 1024 * 1024  # per subscription, in nats-py's own buffer


@dataclass
class Event:
    kind: str
    key: str
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "data": self.data, "at": self.at}


def _json(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None


class EventFeed:
    """`async with EventFeed(nc, kinds=("job", "dead_letter")) as feed:
    async for event in feed: ...`. One feed per SSE client (or one shared, fanned out
    by the web app). `queues`: only events of these queues (job, dead_letter, queue)."""

    def __init__(
        self,
        nc: NATS,
        kinds: tuple[str, ...] = KINDS,
        *,
        queues: tuple[str, ...] = (),
        max_pending: int = MAX_PENDING,
    ) -> None:
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown event kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
        self.nc = nc
        self.kinds = kinds
        self.queues = frozenset(queues)
        self.max_pending = max_pending
        self.dropped = 0  # events dropped since the feed started
        self._pending: OrderedDict[tuple[str, str], Event] = OrderedDict()
        self._wake = asyncio.Event()
        self._resync = False
        self._subs: list[Any] = []
        self._closed = False

    @guard
    async def start(self) -> EventFeed:
        sub = self.nc.subscribe
        opts: dict[str, Any] = {"pending_bytes_limit": PENDING_BYTES}
        if "job" in self.kinds:
            self._subs.append(
                await sub(kv_subject(RESULTS_BUCKET, ">"), cb=self._on_record, **opts)
            )
            self._subs.append(await sub(done_filter(), cb=self._on_record, **opts))
        if "worker" in self.kinds:
            self._subs.append(
                await sub(kv_subject(HEARTBEATS_BUCKET, ">"), cb=self._on_heartbeat, **opts)
            )
        if "dead_letter" in self.kinds:
            self._subs.append(await sub(under(DLQ_SUBJECT_PREFIX), cb=self._on_dead, **opts))
        if "queue" in self.kinds:
            self._subs.append(await sub(consumer_pause_advisories(), cb=self._on_pause, **opts))
        if "schedule" in self.kinds:
            self._subs.append(
                await sub(kv_subject(SCHEDULES_BUCKET, ">"), cb=self._on_schedule, **opts)
            )
        if "audit" in self.kinds:
            self._subs.append(await sub(under(AUDIT_SUBJECT_PREFIX), cb=self._on_audit, **opts))
        return self

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        for s in self._subs:
            with contextlib.suppress(Exception):
                await s.unsubscribe()
        self._subs.clear()

    async def __aenter__(self) -> EventFeed:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        while not self._closed:
            event = await self.next(None)
            if event is not None:
                yield event

    def take(self) -> Event | None:
        """The next waiting event without waiting, or None."""
        if self._resync:
            self._resync = False
            return Event("resync", "", {"dropped": self.dropped})
        if self._pending:
            return self._pending.popitem(last=False)[1]
        return None

    async def next(self, timeout: float | None) -> Event | None:
        """The next event, or None after `timeout` seconds (an SSE keep-alive's cue) or
        once the feed is closed."""
        while not self._closed:
            event = self.take()
            if event is not None:
                return event
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return None
        return None

    # -- intake -----------------------------------------------------------------------

    def _put(self, event: Event) -> None:
        key = (event.kind, event.key)
        if key in self._pending:
            self._pending.move_to_end(key)
        self._pending[key] = event
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
            self.dropped += 1
            self._resync = True
        self._wake.set()

    def _queue_ok(self, queue: str) -> bool:
        return not self.queues or queue in self.queues

    async def _on_record(self, msg: Any) -> None:
        d = _json(msg.data)
        if not isinstance(d, dict) or "id" not in d:
            return
        if not self._queue_ok(str(d.get("queue", ""))):
            return
        data = {k: d.get(k) for k in ("id", "status", "queue", "task", "progress", "attempts")}
        self._put(Event("job", str(d["id"]), data))

    async def _on_heartbeat(self, msg: Any) -> None:
        key = msg.subject[len(kv_subject(HEARTBEATS_BUCKET, "")) :]
        op = (msg.headers or {}).get("KV-Operation")
        d = _json(msg.data) if op not in ("DEL", "PURGE") else None
        if not isinstance(d, dict):
            self._put(Event("worker", key, {"key": key, "gone": True}))
            return
        data = {k: d.get(k) for k in ("host", "role", "pid", "queues", "running", "done", "failed")}
        self._put(Event("worker", key, {"key": key, "gone": False, **data}))

    async def _on_dead(self, msg: Any) -> None:
        queue = dlq_queue(msg.subject)
        if not self._queue_ok(queue):
            return
        d = _json(msg.data)
        d = d if isinstance(d, dict) else {}
        err: dict[str, Any] = d["error"] if isinstance(d.get("error"), dict) else {}
        job_id = str(d.get("id") or msg.subject.split(".", 3)[-1])
        data = {
            "id": job_id, "queue": queue, "task": d.get("task", ""), "reason": d.get("reason", ""),
            "error": f"{err.get('type', '')}: {err.get('message', '')}".strip(": "),
            "dead_at": d.get("dead_at"),
        }  # fmt: skip
        self._put(Event("dead_letter", job_id, data))

    async def _on_pause(self, msg: Any) -> None:
        d = _json(msg.data)
        if not isinstance(d, dict):
            return
        consumer = str(d.get("consumer", ""))
        queue = consumer.removeprefix("q-").split("~", 1)[0]
        if not self._queue_ok(queue):
            return
        self._put(Event("queue", queue, {"queue": queue, "paused": bool(d.get("paused"))}))

    async def _on_schedule(self, msg: Any) -> None:
        key = msg.subject[len(kv_subject(SCHEDULES_BUCKET, "")) :]
        self._put(Event("schedule", key, {"key": key}))

    async def _on_audit(self, msg: Any) -> None:
        d = _json(msg.data)
        if isinstance(d, dict):
            self._put(Event("audit", f"{msg.subject}:{d.get('at')}", d))
