"""Continuous pull from one durable consumer (the ADR-37 'consume' pattern).

Raw `CONSUMER.MSG.NEXT` requests into one callback subscription, asking for exactly as
many jobs as there are free slots: no per-message task or timer as `fetch()` has
(../docs/architecture.md, ../docs/jetstream.md#fetch-versus-a-continuous-pull).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from loguru import logger
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from naqd.protocol.names import HDR_PENDING_MESSAGES, pull_subject

# A pull request that was waiting while its consumer was paused is served at ~5k jobs/s
# after the resume until it expires (nats-server 2.15, measured; fresh requests get
# ~50k/s). Short-lived requests bound that slow spell after `naqd queues resume` to a
# few seconds; renewing one every 5 s on an idle queue costs nothing.
PULL_EXPIRES = 5.0
PULL_HEARTBEAT = 2.0


class Puller:
    def __init__(
        self,
        nc: NATS,
        queue: str,
        free_slots: Callable[[], int],
        deliver: Callable[[Msg], None],
        *,
        capacity: int = 1,
        expires: float = PULL_EXPIRES,
        heartbeat: float = PULL_HEARTBEAT,
    ) -> None:
        self.min_batch = max(1, capacity // 4)
        self.nc = nc
        self.queue = queue
        self.subject = pull_subject(queue)
        self.free_slots = free_slots
        self.deliver = deliver
        self.expires_ns = int(expires * 1e9)
        self.heartbeat = heartbeat
        self.outstanding = 0  # jobs asked for and not yet delivered or released
        self.last_seen = time.monotonic()
        self.stopped = False
        self._sub: Subscription | None = None
        self._inbox = ""
        self._watchdog: asyncio.Task[None] | None = None
        self._backoff_until = 0.0
        self._requesting = False  # a request() task is scheduled
        self._request_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(self._inbox, cb=self._on_msg)
        self._watchdog = asyncio.get_running_loop().create_task(self._watch())
        await self.request()

    def _wanted(self) -> int:
        """How many jobs to ask for now: every free slot, in batches of at least
        `min_batch` (a quarter of the capacity) unless nothing is asked for at all: tiny
        pulls cost a request each, and a slot parked for one pull round-trip costs little."""
        if self.stopped:
            return 0
        free = self.free_slots() - self.outstanding
        if free < self.min_batch and (self.outstanding or free <= 0):
            return 0
        return free

    def slot_freed(self) -> None:
        """Called as each job ends (so synchronous and cheap): a pull request is sent only
        once enough slots are free."""
        if self._wanted() and not self._requesting:
            self._requesting = True
            # Kept: the loop holds only a weak reference to a task.
            self._request_task = asyncio.get_running_loop().create_task(self.request())

    def _retry_request(self) -> None:
        if not self.stopped:
            # Kept, as in slot_freed: the loop holds only a weak reference to a task.
            self._request_task = asyncio.get_running_loop().create_task(self.request())

    async def request(self) -> None:
        self._requesting = False
        if time.monotonic() < self._backoff_until:
            return
        free = self._wanted()
        if not free:
            return
        self.outstanding += free
        body = json.dumps(
            {"batch": free, "expires": self.expires_ns, "idle_heartbeat": int(self.heartbeat * 1e9)}
        ).encode()
        self.last_seen = time.monotonic()
        await self.nc.publish(self.subject, body, reply=self._inbox)

    async def reset(self) -> None:
        """Forget outstanding requests (lost on reconnect or leader change) and ask again."""
        self.outstanding = 0
        await self.request()

    async def stop(self) -> None:
        self.stopped = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._sub is not None:
            try:
                # drain, not unsubscribe: jobs the server sent before it saw our UNSUB
                # still reach `deliver` (which naks them while draining) instead of being
                # dropped and waiting out ack_wait.
                # Bounded: a stop must never hang on a connection that went bad.
                await asyncio.wait_for(self._sub.drain(), 5.0)  # type: ignore[no-untyped-call]
            except Exception as exc:  # connection already closing
                logger.debug("unsubscribe failed: {}", exc)

    async def _on_msg(self, msg: Msg) -> None:
        self.last_seen = time.monotonic()
        if msg.reply:
            self.outstanding = max(0, self.outstanding - 1)
            self.deliver(msg)
            return
        status = (msg.headers or {}).get("Status", "")
        if status == "100":  # idle heartbeat
            return
        pending = (msg.headers or {}).get(HDR_PENDING_MESSAGES)
        if status in ("404", "408") or pending is not None:
            self.outstanding = max(0, self.outstanding - int(pending or 0))
            await self.request()
            return
        # 409 (leadership change, max waiting...) or 503 (no consumer leader): back off,
        # then start over; a stale request delivering extra jobs is absorbed by the runner.
        desc = (msg.headers or {}).get("Description", "")
        logger.warning("pull on {} answered {} {}: retrying", self.queue, status, desc)
        self._backoff_until = time.monotonic() + 0.5
        self.outstanding = 0
        asyncio.get_running_loop().call_later(0.51, self._retry_request)

    async def _watch(self) -> None:
        while not self.stopped:
            await asyncio.sleep(self.heartbeat)
            silent = time.monotonic() - self.last_seen
            if self.outstanding and silent > 2 * self.heartbeat:
                logger.info("pull on {} silent for {:.1f}s: re-pulling", self.queue, silent)
                await self.reset()
            elif not self.outstanding:
                await self.request()
