"""Leader election over the lease bucket: campaign with `create`, renew with
`update(last=revision)`, step down on our own clock (naqd/scheduler/lease.py)."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from loguru import logger
from nats.js.errors import KeyWrongLastSequenceError

from naqd.protocol.names import LEADER_KEY
from naqd.protocol.schedule_state import leader_value
from naqd.scheduler.lease import Lease


class Election:
    def __init__(self, kv: Any, lease_seconds: float, renew_every: float) -> None:
        self.kv = kv
        self.lease = Lease(lease_seconds, renew_every)
        self.since = 0.0  # wall clock of the current term, for `naqd schedules`
        self.term_started = asyncio.Event()  # set on each win, for the fire loop
        self.stopped = False

    def may_fire(self) -> bool:
        return self.lease.may_fire(time.monotonic())

    @property
    def revision(self) -> int | None:
        return self.lease.revision

    async def run(self) -> None:
        # A random splay so hosts started together do not campaign in lockstep.
        await asyncio.sleep(random.uniform(0, self.lease.renew_every / 4))
        while not self.stopped:
            await self.step()
            await asyncio.sleep(self._sleep_time())

    def _sleep_time(self) -> float:
        interval = self.lease.renew_every
        if self.lease.revision is None:
            return interval * random.uniform(0.8, 1.0)
        # Wake for the step-down deadline too, not only for the next renewal.
        deadline = self.lease.confirmed_sent_at + self.lease.step_down_after - time.monotonic()
        return max(0.01, min(interval, deadline))

    async def step(self) -> None:
        now = time.monotonic()
        if self.lease.expired(now):
            logger.warning(
                "stepping down: no renewal confirmed within {:.1f}s", self.lease.step_down_after
            )
        timeout = max(0.2, min(self.lease.renew_every, 2.0))
        sent = time.monotonic()
        try:
            if self.lease.revision is None:
                since = time.time()
                rev = await asyncio.wait_for(
                    self.kv.create(LEADER_KEY, leader_value(since)), timeout
                )
                self.lease.won(sent, rev)
                self.since = since
                self.term_started.set()
                logger.info(
                    "became scheduler leader (revision {}); first fire in {:.1f}s",
                    rev,
                    self.lease.renew_every,
                )
            else:
                rev = await asyncio.wait_for(
                    self.kv.update(LEADER_KEY, leader_value(self.since), last=self.lease.revision),
                    timeout,
                )
                self.lease.renewed(sent, rev)
        except KeyWrongLastSequenceError:
            if self.lease.revision is not None:
                logger.warning("lost the scheduler lease to another host")
            self.lease.lost()
        except Exception as exc:  # timeouts, 503, reconnecting: the clock decides
            logger.debug("lease request failed: {}: {}", type(exc).__name__, exc)

    async def release(self) -> None:
        """On a clean stop: delete the key so another host takes over at once."""
        self.stopped = True
        rev = self.lease.revision
        self.lease.lost()
        if rev is None:
            return
        try:
            await asyncio.wait_for(self.kv.delete(LEADER_KEY, last=rev), 2.0)
            logger.info("released the scheduler lease")
        except Exception as exc:
            logger.warning("could not release the scheduler lease: {}", exc)
