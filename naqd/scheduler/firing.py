"""The fire loop: while this process leads, turn due ticks into jobs. Each fire's job id
and Nats-Msg-Id derive from the schedule name and the tick, so an overlap of two
leaders still stores one job; the last fired tick goes to KV for the next leader."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from loguru import logger

from naqd.client.client import Client
from naqd.config import Config, ScheduleConfig
from naqd.observe.metrics import metrics
from naqd.protocol.names import HDR_LEADER_REV
from naqd.scheduler.code_schedules import CodeSchedule
from naqd.scheduler.code_source import CodeScheduleSource
from naqd.scheduler.cron import Trigger, decide, jitter_offset, tick_job_id
from naqd.scheduler.state import ScheduleState

MAX_SLEEP = 0.25  # bounds how late a leadership change or a due tick is noticed


def utcnow() -> datetime:
    return datetime.now(UTC)


async def publish_fire(
    client: Client,
    schedule: ScheduleConfig,
    job_id: str,
    leader_revision: int | None = None,
) -> None:
    """Enqueue one run of `schedule` as job `job_id` (also used by `schedules trigger`)."""
    subject, payload, headers = client.build(
        schedule.task,
        schedule.args,
        dict(schedule.kwargs),
        queue=schedule.queue,
        job_id=job_id,
        retries=schedule.retries,
        timeout=schedule.timeout,
    )
    if leader_revision is not None:
        headers[HDR_LEADER_REV] = str(leader_revision)
    await client._publish(subject, payload, headers)


class FireLoop:
    def __init__(
        self,
        config: Config,
        client: Client,
        state: ScheduleState,
        may_fire: Callable[[], bool],
        revision: Callable[[], int | None],
        code: CodeScheduleSource | None = None,
    ) -> None:
        self.yaml = {n: s for n, s in config.schedules.items() if s.enabled}
        self.schedules = dict(self.yaml)
        self.triggers = {n: Trigger.of(s) for n, s in self.schedules.items()}
        self.code = code
        self._code_seen: dict[str, CodeSchedule] = {}
        self._shadowed: set[str] = set()
        self.client = client
        self.state = state
        self.may_fire = may_fire
        self.revision = revision
        self.cursors: dict[str, datetime] = {}
        self.loaded = False  # cursors loaded from KV since we last became leader
        self.stopped = False
        self.pending: set[asyncio.Task[None]] = set()
        self.fired = 0

    async def run(self) -> None:
        while not self.stopped:
            if not self.may_fire():
                self.loaded = False  # reload from KV when we lead again
                await asyncio.sleep(0.1)
                continue
            try:
                if not self.loaded:
                    await self._load_cursors()
                await self._refresh_code()
                await self._fire_due()
            except Exception as exc:  # NATS trouble: try again shortly, never die
                logger.warning("scheduler loop: {}: {}", type(exc).__name__, exc)
                self.loaded = False
                await asyncio.sleep(0.5)
                continue
            await asyncio.sleep(self._sleep_time())

    async def _load_cursors(self) -> None:
        now = utcnow()
        # Publish our YAML names so `client.schedule()` refuses to shadow them.
        await self.state.set_yaml_names(sorted(self.yaml))
        self._code_seen.clear()
        self.cursors.clear()
        for name in self.yaml:
            last = await self.state.last_fired(name)
            # A schedule never fired starts now: no catch-up for a tick before it existed.
            self.cursors[name] = last if last is not None else now
        self.schedules = dict(self.yaml)
        self.triggers = {n: Trigger.of(s) for n, s in self.yaml.items()}
        self.loaded = True

    async def _refresh_code(self) -> None:
        """Bring code schedules in step with KV: new ones start at their creation time
        (or their last fired tick), a modified one never fires a tick from before the
        change, a removed one stops. YAML wins a name conflict."""
        if self.code is None:
            return
        current = self.code.schedules
        if current == self._code_seen:
            return
        for name in set(self._code_seen) - set(current):
            if name not in self.yaml:
                self.schedules.pop(name, None)
                self.triggers.pop(name, None)
                self.cursors.pop(name, None)
                logger.info("code schedule {} removed", name)
        for name, code in current.items():
            if name in self.yaml:
                if name not in self._shadowed:
                    self._shadowed.add(name)
                    logger.warning("code schedule {} ignored: a YAML schedule has its name", name)
                continue
            if self._code_seen.get(name) == code:
                continue
            last = await self.state.last_fired(name)
            cursor = max(last, code.since) if last is not None else code.since
            if name in self.cursors:
                cursor = max(cursor, self.cursors[name])
            self.cursors[name] = cursor
            self.schedules[name] = code.schedule
            self.triggers[name] = Trigger.of(code.schedule)
            logger.info("code schedule {} loaded", name)
        self._code_seen = dict(current)

    async def _fire_due(self) -> None:
        now = utcnow()
        for name, schedule in list(self.schedules.items()):
            cursor = self.cursors[name]
            decision = decide(self.triggers[name], cursor, now, schedule.missed)
            self.cursors[name] = decision.cursor
            if decision.skipped:
                logger.info("{}: skipped missed tick {} (missed: skip)", name, decision.cursor)
            if decision.tick is None:
                continue
            delay = jitter_offset(name, decision.tick, schedule.jitter)
            delay -= (now - decision.tick).total_seconds()
            if delay > 0:
                task = asyncio.get_running_loop().create_task(
                    self._fire(schedule, decision.tick, cursor, delay)
                )
                self.pending.add(task)
                task.add_done_callback(self.pending.discard)
            else:
                await self._fire(schedule, decision.tick, cursor, 0.0)

    async def _fire(
        self, schedule: ScheduleConfig, tick: datetime, previous: datetime, delay: float
    ) -> None:
        name = schedule.name
        if delay > 0:
            await asyncio.sleep(delay)
        if not self.may_fire():
            return  # lost the lease meanwhile: the next leader takes it from KV
        job_id = tick_job_id(name, tick)
        try:
            if await self.state.paused(name):
                logger.info("{}: paused, not firing {}", name, tick.isoformat())
                await self.state.record_fired(name, tick, "")
                return
            await publish_fire(self.client, schedule, job_id, self.revision())
            self.fired += 1
            m = metrics()
            m.schedule_fires.labels(name).inc()
            m.schedule_last_fire.labels(name).set(time.time())
            logger.info("fired {} for tick {}", job_id, tick.isoformat())
            await self.state.record_fired(name, tick, job_id)
        except Exception as exc:
            logger.warning("{}: firing {} failed: {}; will retry", name, job_id, exc)
            if self.cursors.get(name) == tick:
                self.cursors[name] = previous

    def _sleep_time(self) -> float:
        now = utcnow()
        soonest = min(
            (t.next_after(self.cursors.get(n, now)) for n, t in self.triggers.items()),
            default=None,
        )
        if soonest is None:
            return MAX_SLEEP
        return max(0.005, min(MAX_SLEEP, (soonest - now).total_seconds()))

    async def stop(self) -> None:
        self.stopped = True
        for task in list(self.pending):
            task.cancel()
