"""Pulling from a queue with priority levels (docs/job-control.md), a drop-in for Puller.

Each level has its own subject and consumer. JetStream cannot order messages across
consumers, so the worker does (docs/jetstream.md#priorities-across-consumers):
whenever it has free slots it
asks the levels one after the other, highest first, with `no_wait` pulls (answered at
once: the jobs there are, or 404), until the slots are full. Only when every level is
empty does it park one long pull (batch 1) per level, and a job arriving on any of them
starts a new round. To never starve the lower levels, every `FAIR_EVERY`-th round asks
them in reverse order, lowest first.
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

from naqd.config import QueueConfig
from naqd.protocol.names import next_subject, priority_consumer_name
from naqd.worker.puller import PULL_EXPIRES, Puller

FAIR_EVERY = 10  # one round in this many serves the lowest level first
# Seconds a parked long pull waits before it is renewed: as short as the plain puller's
# (worker/puller.py), since a pull that waited across a pause is served slowly after the
# resume until it expires.
PARK_EXPIRES = PULL_EXPIRES
NOWAIT_DEADLINE = 5.0  # a no_wait pull that is not answered by then is given up


def round_order(levels: int, round_no: int, fair_every: int = FAIR_EVERY) -> list[int]:
    """Level indexes (0 = highest) in the order this round asks them."""
    order = list(range(levels))
    if fair_every > 0 and round_no % fair_every == fair_every - 1:
        order.reverse()
    return order


class PriorityPuller:
    def __init__(
        self,
        nc: NATS,
        queue: str,
        consumers: list[str],  # highest level first
        free_slots: Callable[[], int],
        deliver: Callable[[Msg], None],
        *,
        capacity: int = 1,
    ) -> None:
        self.nc = nc
        self.queue = queue
        self.consumers = consumers
        self.level_of = {name: i for i, name in enumerate(consumers)}
        self.free_slots = free_slots
        self.deliver = deliver
        self.min_batch = max(1, capacity // 4)
        self.parked = [0] * len(consumers)  # outstanding batch-1 long pulls per level
        self.parked_at = 0.0
        self.nowait: dict[str, tuple[int, int, asyncio.Future[None]]] = {}  # token -> ...
        self.counted = [0] * len(consumers)  # jobs received for the no_wait of a level
        self.rounds = 0
        self.stopped = False
        self._wake = asyncio.Event()
        self._prefix = ""
        self._seq = 0
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._prefix = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(f"{self._prefix}.*", cb=self._on_msg)
        self._task = asyncio.get_running_loop().create_task(self._loop())
        self._wake.set()

    async def request(self) -> None:
        self._wake.set()

    def slot_freed(self) -> None:
        self._wake.set()

    async def reset(self) -> None:
        self.parked = [0] * len(self.consumers)
        self._wake.set()

    async def stop(self) -> None:
        self.stopped = True
        if self._task is not None:
            self._task.cancel()
        if self._sub is not None:
            try:
                # Bounded: a stop must never hang on a connection that went bad.
                # Late jobs still reach `deliver` (which naks).
                drained = self._sub.drain()  # type: ignore[no-untyped-call]
                await asyncio.wait_for(drained, 5.0)
            except Exception as exc:
                logger.debug("unsubscribe failed: {}", exc)

    # -- the loop -----------------------------------------------------------------------

    async def _loop(self) -> None:
        while not self.stopped:
            woken = True
            try:
                await asyncio.wait_for(self._wake.wait(), 1.0)
            except TimeoutError:
                woken = False
            self._wake.clear()
            if any(self.parked) and time.monotonic() - self.parked_at > PARK_EXPIRES + 2:
                self.parked = [0] * len(self.consumers)  # lost (reconnect): park again
            if not woken and all(self.parked):
                continue  # idle, every level has a long pull waiting
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("pull on {}: {}: {}", self.queue, type(exc).__name__, exc)
                await asyncio.sleep(0.5)

    def _free(self) -> int:
        # Parked pulls are not subtracted: each holds at most one job, so at most one
        # job per level can arrive beyond the free slots (the runner holds it for a slot).
        return self.free_slots()

    async def _round(self) -> None:
        free = self._free()
        if free <= 0:
            return
        order = round_order(len(self.consumers), self.rounds)
        self.rounds += 1
        got = 0
        for level in order:
            want = self._free()
            if want <= 0:
                return
            got += await self._pull_nowait(level, want)
        if got == 0:
            await self._park()
        elif got:
            self._wake.set()  # there may be more: go round again while slots are free

    async def _pull_nowait(self, level: int, batch: int) -> int:
        token = self._token()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.counted[level] = 0
        self.nowait[token] = (level, batch, fut)
        body = json.dumps({"batch": batch, "no_wait": True}).encode()
        await self.nc.publish(self._subject(level), body, reply=f"{self._prefix}.{token}")
        try:
            await asyncio.wait_for(fut, NOWAIT_DEADLINE)
        except TimeoutError:
            logger.info("no_wait pull on {} unanswered: moving on", self.consumers[level])
        finally:
            self.nowait.pop(token, None)
        return self.counted[level]

    async def _park(self) -> None:
        """One long pull on every level that has none waiting."""
        self.parked_at = time.monotonic()
        body = json.dumps({"batch": 1, "expires": int(PARK_EXPIRES * 1e9)}).encode()
        for level in range(len(self.consumers)):
            if self.parked[level]:
                continue
            self.parked[level] += 1
            reply = f"{self._prefix}.p{level}"
            await self.nc.publish(self._subject(level), body, reply=reply)

    def _subject(self, level: int) -> str:
        return next_subject(self.consumers[level])

    def _token(self) -> str:
        self._seq += 1
        return f"n{self._seq}"

    # -- replies ------------------------------------------------------------------------

    async def _on_msg(self, msg: Msg) -> None:
        if msg.reply:  # a job; its ack subject names the consumer, hence the level
            level = self._level_of_reply(msg.reply)
            self.deliver(msg)
            if level is None:
                return
            # The server serves a consumer's waiting pulls in order: parked ones first.
            if self.parked[level] > 0:
                self.parked[level] -= 1
                self._wake.set()
                return
            self.counted[level] += 1
            for lvl, batch, fut in self.nowait.values():
                if lvl == level and self.counted[level] >= batch and not fut.done():
                    fut.set_result(None)
            return
        token = msg.subject.rsplit(".", 1)[-1]
        status = (msg.headers or {}).get("Status", "")
        if status == "100":
            return
        if token.startswith("p"):  # a parked pull ended (expired, or the server said why)
            level = int(token[1:])
            self.parked[level] = max(0, self.parked[level] - 1)
            self._wake.set()
            return
        entry = self.nowait.get(token)
        if entry is not None and not entry[2].done():
            entry[2].set_result(None)
        if status not in ("404", "408"):
            desc = (msg.headers or {}).get("Description", "")
            logger.warning("pull on {} answered {} {}", self.queue, status, desc)

    def _level_of_reply(self, reply: str) -> int | None:
        # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
        parts = reply.split(".")
        if len(parts) < 5:
            return None
        return self.level_of.get(parts[3])


def make_puller(
    nc: NATS,
    queue: QueueConfig,
    room: Callable[[], int],
    deliver: Callable[[Msg], None],
    *,
    capacity: int,
) -> Puller | PriorityPuller:
    """The plain continuous Puller, or the PriorityPuller for a queue with levels;
    `room()` says how many jobs to ask for, `capacity` is the most a process holds."""
    if len(queue.priorities) > 1:
        consumers = [priority_consumer_name(queue.name, level) for level in queue.priorities]
        return PriorityPuller(nc, queue.name, consumers, room, deliver, capacity=capacity)
    return Puller(nc, queue.name, room, deliver, capacity=capacity)
