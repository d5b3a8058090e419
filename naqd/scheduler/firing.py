"""The fire loop: while this process leads, turn due ticks into jobs. Each fire's job id
and Nats-Msg-Id derive from the schedule name and the tick, so an overlap of two
leaders still stores one job; the last fired tick goes to KV for the next leader.

Cost: each schedule's next ticks are cached and the schedules ordered by when they are
due (timetable.py), so the loop sleeps until the soonest and waiting schedules cost
nothing. The ticks due at one moment fire together as a wave (waves.py).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from naqd.client.client import Client
from naqd.config import Config, ScheduleConfig
from naqd.protocol.schedule_state import ScheduleState
from naqd.protocol.schedules import CodeSchedule
from naqd.protocol.ticks import Trigger
from naqd.scheduler.code_source import CodeScheduleSource, PausedSource
from naqd.scheduler.cron import jitter_offset
from naqd.scheduler.timetable import NextTicks, Timetable, decide_due, next_ticks
from naqd.scheduler.waves import IN_FLIGHT, Fire, Firer, fire_message

MAX_SLEEP = 0.25  # bounds how late a leadership change or a code schedule change is noticed
RETRY_AFTER = 1.0  # s before a schedule whose fire failed is decided again
PAUSES_TIMEOUT = 10.0  # s for the paused flags to load when we become leader


def utcnow() -> datetime:
    return datetime.now(UTC)


async def publish_fire(
    client: Client,
    schedule: ScheduleConfig,
    job_id: str,
    leader_revision: int | None = None,
) -> None:
    """Enqueue one run of `schedule` as job `job_id` (also used by `schedules trigger`)."""
    await client._publish(*fire_message(client, schedule, job_id, leader_revision))


class FireLoop:
    def __init__(
        self,
        config: Config,
        client: Client,
        state: ScheduleState,
        may_fire: Callable[[], bool],
        revision: Callable[[], int | None],
        code: CodeScheduleSource | None = None,
        paused: PausedSource | None = None,
    ) -> None:
        self.yaml = {n: s for n, s in config.schedules.items() if s.enabled}
        self.yaml_defs = list(config.schedules.values())  # disabled ones too, for consoles
        self.schedules = dict(self.yaml)
        self.triggers = {n: Trigger.of(s) for n, s in self.schedules.items()}
        self.code = code
        self.paused = paused  # None: ask KV on each fire
        self._code_seen: dict[str, CodeSchedule] = {}
        self._code_version = -1
        self._shadowed: set[str] = set()
        self.client = client
        self.state = state
        self.may_fire = may_fire
        self.revision = revision
        self.cursors: dict[str, datetime] = {}  # the last tick dealt with, per schedule
        self.ticks: dict[str, NextTicks] = {}  # the next ticks after each cursor
        self.timetable = Timetable()
        self._tokens = itertools.count(1)
        self._token: dict[str, int] = {}
        self.loaded = False  # cursors loaded from KV since we last became leader
        self.stopped = False
        self.pending: set[asyncio.Task[None]] = set()
        debug = logger.level("DEBUG").no
        self.firer = Firer(
            client, state, may_fire, revision, self._settle, paused,
            log_fires=logger.level(config.logging.level).no <= debug,
        )  # fmt: skip
        self._wake = asyncio.Event()  # a schedule went back in, due before we wake
        self._wake_at = 0.0  # when the loop's current sleep ends (0 while it is awake)

    @property
    def fired(self) -> int:
        return self.firer.fired

    @property
    def recorded(self) -> dict[str, datetime]:
        return self.firer.recorded

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
                self._fire_due()
            except Exception as exc:  # NATS trouble: try again shortly, never die
                logger.warning("scheduler loop: {}: {}", type(exc).__name__, exc)
                self.loaded = False
                await asyncio.sleep(0.5)
                continue
            await self._sleep(self._sleep_time())

    # -- the schedules and their cursors -------------------------------------------------

    async def _load_cursors(self) -> None:
        if self.paused is not None:  # never fire a paused schedule for want of its flag
            await asyncio.wait_for(self.paused.ready.wait(), PAUSES_TIMEOUT)
        now = utcnow()
        # Publish our YAML names so `client.schedule()` refuses to shadow them.
        await self.state.set_yaml_names(sorted(self.yaml))
        # And the definitions, so every host's console and CLI see them (a SIGHUP that
        # changes them restarts this child, which publishes again when it leads).
        await self.state.set_yaml_schedules(self.yaml_defs)
        self._code_seen.clear()
        self._code_version = -1
        for table in (self.cursors, self.ticks, self.recorded, self._token):
            table.clear()
        self.timetable.clear()
        names = list(self.yaml)
        lasts: list[datetime | None] = []
        for i in range(0, len(names), IN_FLIGHT):
            chunk = names[i : i + IN_FLIGHT]
            lasts += await asyncio.gather(*(self.state.last_fired(n) for n in chunk))
        self.schedules = dict(self.yaml)
        self.triggers = {n: Trigger.of(s) for n, s in self.yaml.items()}
        for i, (name, last) in enumerate(zip(names, lasts, strict=True)):
            # A schedule never fired starts now: no catch-up for a tick before it existed.
            self.cursors[name] = last if last is not None else now
            if last is not None:
                self.recorded[name] = last
            self._reset(name)
            if i % 200 == 199:
                await asyncio.sleep(0)  # ~0.2 ms of croniter per schedule: let renewals in
        self.loaded = True

    async def _refresh_code(self) -> None:
        """Bring code schedules in step with KV: new ones start at their creation time
        (or their last fired tick), a modified one never fires a tick from before the
        change, a removed one stops. YAML wins a name conflict."""
        if self.code is None or self.code.version == self._code_version:
            return
        self._code_version = self.code.version
        current = dict(self.code.schedules)
        if current == self._code_seen:
            return
        for name in set(self._code_seen) - set(current):
            if name not in self.yaml:
                for table in (self.schedules, self.triggers, self.cursors, self.ticks):
                    table.pop(name, None)
                self._token.pop(name, None)
                self.timetable.discard(name)
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
            if last is not None:
                self.recorded[name] = max(last, self.recorded.get(name, last))
            self.schedules[name] = code.schedule
            self.triggers[name] = Trigger.of(code.schedule)
            self.ticks.pop(name, None)
            self._reset(name)
            logger.info("code schedule {} loaded", name)
        self._code_seen = current

    def _reset(self, name: str) -> None:
        """The schedule or its cursor changed from outside: fires under way for it no
        longer move its cursor or put it back."""
        self._token[name] = next(self._tokens)
        self._schedule(name)

    def _schedule(self, name: str, not_before: float = 0.0) -> float:
        """Put `name` in the timetable at its next tick after its cursor; returns when."""
        ticks = next_ticks(self.triggers[name], self.cursors[name], self.ticks.get(name))
        self.ticks[name] = ticks
        at = max(ticks.due.timestamp(), not_before)
        self.timetable.put(name, at)
        return at

    # -- deciding ----------------------------------------------------------------------

    def _fire_due(self) -> None:
        now = utcnow()
        wave: list[Fire] = []
        for name in self.timetable.take_due(now.timestamp()):
            try:
                self._decide(name, now, wave)
            except Exception as exc:  # a lookup that fails must not take the others down
                logger.warning("{}: {}: {}", name, type(exc).__name__, exc)
                self.timetable.put(name, now.timestamp() + RETRY_AFTER)
        if wave:
            self._spawn(self.firer.wave(wave))

    def _decide(self, name: str, now: datetime, wave: list[Fire]) -> None:
        schedule, cursor = self.schedules[name], self.cursors[name]
        ticks = next_ticks(self.triggers[name], cursor, self.ticks.get(name))
        self.ticks[name] = ticks
        decision = decide_due(self.triggers[name], ticks, now, schedule.missed)
        self.cursors[name] = decision.cursor
        if decision.skipped:
            logger.info("{}: skipped missed tick {} (missed: skip)", name, decision.cursor)
            hooks = self.client.hooks
            if hooks is not None and hooks.on_missed_tick:
                missed = hooks.call(
                    "on_missed_tick", hooks.on_missed_tick, schedule, decision.cursor
                )
                self._spawn(missed)
        tick = decision.tick
        if tick is None:
            self._schedule(name)
            return
        delay = 0.0
        if schedule.jitter > 0:
            delay = jitter_offset(name, tick, schedule.jitter) - (now - tick).total_seconds()
        if delay <= 0:
            wave.append(Fire(schedule, tick, cursor, self._token[name], holds=True))
            return
        # Jittered: later ticks are decided while this one waits.
        self._schedule(name)
        fire = Fire(schedule, tick, cursor, self._token[name], holds=False)
        self._spawn(self._fire_later(fire, delay))

    async def _fire_later(self, fire: Fire, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.firer.wave([fire])

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    def _settle(self, fire: Fire, ok: bool) -> None:
        name = fire.schedule.name
        if self._token.get(name) != fire.token:
            return  # reset meanwhile (leadership, code change): nothing of ours to undo
        reset = not ok and self.cursors.get(name) == fire.tick
        if reset:
            self.cursors[name] = fire.previous  # decide this tick again, after a pause
        if fire.holds or (reset and name in self.timetable):
            not_before = time.time() + RETRY_AFTER if not ok else 0.0
            try:
                at = self._schedule(name, not_before)
            except Exception as exc:  # as in _fire_due: this schedule only, later
                logger.warning("{}: {}: {}", name, type(exc).__name__, exc)
                at = time.time() + RETRY_AFTER
                self.timetable.put(name, at)
            if at < self._wake_at:
                self._wake.set()

    # -- sleeping ------------------------------------------------------------------------

    def _sleep_time(self) -> float:
        soonest = self.timetable.soonest()
        if soonest is None:
            return MAX_SLEEP
        return max(0.0, min(MAX_SLEEP, soonest - time.time()))

    async def _sleep(self, seconds: float) -> None:
        """Until `seconds` pass or a settled fire puts back a schedule due sooner."""
        self._wake.clear()
        self._wake_at = time.time() + seconds
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass
        finally:
            self._wake_at = 0.0  # awake: the next sleep is computed from the timetable

    async def stop(self) -> None:
        self.stopped = True
        self._wake.set()
        for task in list(self.pending):
            task.cancel()
        await self.firer.close()
