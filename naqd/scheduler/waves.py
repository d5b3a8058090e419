"""Firing ticks: the ticks due at one moment go out as a wave, in chunks of IN_FLIGHT.
Every job of a chunk is published back to back and their PubAcks awaited together,
then the fired ticks' KV records (`last.<name>`) likewise. A fire whose pipelined write
failed is retried on its own, awaited with the same Nats-Msg-Id (the stream's dedupe
makes that safe), so one failure never holds up the others. A fire is settled (its
schedule goes back in the timetable) only once its tick is recorded, so a schedule's
next tick is never fired before the previous one is in KV.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loguru import logger

from naqd.client.client import Client
from naqd.config import ScheduleConfig
from naqd.middleware import EnqueueMessage
from naqd.observe.metrics import metrics
from naqd.protocol.names import HDR_LEADER_REV, batch_headers, batch_stream
from naqd.protocol.schedule_state import ScheduleState, last_subject, last_value
from naqd.protocol.ticks import tick_job_id
from naqd.scheduler.code_source import PausedSource
from naqd.transport.streamwriter import Batching, StreamWriter, failed

CHUNK = 64  # jobs built and written out at a time
IN_FLIGHT = 256  # at most this many jobs, and as many KV records, unconfirmed at once
ACK_TIMEOUT = 2.0  # s for a pipelined PubAck; then the write is retried, awaited

Message = tuple[str, bytes, dict[str, str]]


def fire_message(
    client: Client, schedule: ScheduleConfig, job_id: str, leader_revision: int | None = None
) -> Message:
    """Subject, payload and headers of one run of `schedule` as job `job_id`."""
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
    return subject, payload, headers


@dataclass(slots=True)
class Fire:
    schedule: ScheduleConfig
    tick: datetime
    previous: datetime  # the cursor before this tick: restored if the fire fails
    token: int  # the schedule's token when decided: a reset since makes the fire stale
    holds: bool  # the schedule is out of the timetable until this fire is settled


def wave_summary(fires: list[Fire], fired: int, skipped: int) -> str:
    """One INFO line per wave (each fire is a DEBUG line): a thousand ticks due at once
    must not write a thousand lines."""
    names = sorted({f.schedule.name for f in fires})
    ticks = sorted(f.tick for f in fires)
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    when = ticks[0].isoformat() + (f" .. {ticks[-1].isoformat()}" if ticks[-1] != ticks[0] else "")
    line = f"fired {fired} of {len(fires)} due tick(s) of {shown} ({when})"
    rest = len(fires) - fired - skipped
    if skipped:
        line += f"; {skipped} paused"
    if rest > 0:
        line += f"; {rest} being retried"
    return line


@dataclass(slots=True)
class Sent:
    fire: Fire
    job_id: str
    msg: Message
    ack: asyncio.Future[None]


@dataclass(slots=True)
class Recording:
    fire: Fire
    job_id: str  # "" for a paused tick
    ack: asyncio.Future[None] | None  # None: a later tick is recorded already


class Firer:
    """Sends fires and calls `settle(fire, ok)` once for each: ok when its tick is
    recorded (or was paused, or the lease was lost before it went out)."""

    def __init__(
        self,
        client: Client,
        state: ScheduleState,
        may_fire: Callable[[], bool],
        revision: Callable[[], int | None],
        settle: Callable[[Fire, bool], None],
        paused: PausedSource | None = None,
        log_fires: bool = True,
    ) -> None:
        self.client = client
        self.state = state
        self.may_fire = may_fire
        self.revision = revision
        self.settle = settle
        self.paused = paused  # None: ask KV on each fire
        self.log_fires = log_fires  # DEBUG is on: a line per fire (skipped cheaply if not)
        self.recorded: dict[str, datetime] = {}  # the tick in KV `last.<name>`, as we know it
        self.fired = 0
        self.skipped = 0  # fires of paused schedules in the current wave
        self.tasks: set[asyncio.Task[None]] = set()
        self._publisher: StreamWriter | None = None
        self._wave_lock = asyncio.Lock()  # one wave at a time, so IN_FLIGHT bounds them all
        self._retry_slots = asyncio.Semaphore(IN_FLIGHT)
        self._owed: dict[int, Fire] = {}  # fires not settled yet, by id
        self._metrics: dict[str, tuple[Any, Any]] = {}  # labelled children, by schedule
        self.hooks = client.hooks  # the middleware (naq.yaml), or None
        self._enqueuing: dict[str, EnqueueMessage] = {}  # by job id: before_enqueue done

    def _done(self, fire: Fire, ok: bool) -> None:
        """Settle `fire` once (a second call is ignored)."""
        if self._owed.pop(id(fire), None) is not None:
            self.settle(fire, ok)

    async def wave(self, fires: list[Fire]) -> None:
        """Fire `fires`: all their jobs first, then their ticks' KV records."""
        for fire in fires:
            self._owed[id(fire)] = fire
        before, self.skipped = self.fired, 0
        try:
            await self._wave(fires)
        except Exception as exc:  # a bug, not NATS trouble: never lose the schedules
            logger.opt(exception=exc).error("fire wave failed")
            for fire in fires:
                self._done(fire, False)
        if fires:
            logger.info("{}", wave_summary(fires, self.fired - before, self.skipped))

    async def _wave(self, fires: list[Fire]) -> None:
        async with self._wave_lock:
            if self._publisher is None:
                # A wave's fires share atomic batches: one fsync each (sync: always).
                batching = Batching(batch_stream, batch_headers)
                self._publisher = StreamWriter(self.client.nc, batching)
                await self._publisher.start()
            publisher = self._publisher
            # Jobs first, as early as possible: CHUNK at a time, each chunk written out
            # while the next is built, at most IN_FLIGHT of them unconfirmed.
            sent: list[Sent] = []
            paused: list[Recording] = []
            confirmed = 0  # sent[:confirmed] had their PubAcks awaited
            for i in range(0, len(fires), CHUNK):
                jobs, records = await self._send_jobs(fires[i : i + CHUNK])
                sent += jobs
                paused += records
                await asyncio.sleep(0)  # the flusher writes them out
                while len(sent) - confirmed > IN_FLIGHT - CHUNK:
                    await publisher.wait(
                        [s.ack for s in sent[confirmed : confirmed + CHUNK]], ACK_TIMEOUT
                    )
                    confirmed += CHUNK
            # Then the ticks of the stored jobs, IN_FLIGHT records at a time.
            for i in range(0, max(len(sent), 1), IN_FLIGHT):
                part = sent[i : i + IN_FLIGHT]
                await publisher.wait([s.ack for s in part], ACK_TIMEOUT)
                records = await self._send_records(part)
                if i == 0:
                    records += paused
                await publisher.wait([r.ack for r in records if r.ack], ACK_TIMEOUT)
                self._settle_records(records)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self._publisher is not None:
            await self._publisher.stop()

    async def _send_jobs(self, fires: list[Fire]) -> tuple[list[Sent], list[Recording]]:
        """Publish the job of each fire; a paused one only gets its tick recorded."""
        sent: list[Sent] = []
        records: list[Recording] = []
        if not fires:
            return sent, records
        if not self.may_fire():
            for fire in fires:  # lost the lease meanwhile: the next leader takes it from KV
                self._done(fire, True)
            return sent, records
        assert self._publisher is not None
        revision = self.revision()
        for fire in fires:
            name = fire.schedule.name
            job_id = tick_job_id(name, fire.tick)
            msg = None
            try:
                if await self._is_paused(name):
                    logger.debug("{}: paused, not firing {}", name, fire.tick.isoformat())
                    self.skipped += 1
                    job_id = ""
                    records.append(Recording(fire, job_id, await self._send_record(fire, job_id)))
                else:
                    msg = fire_message(self.client, fire.schedule, job_id, revision)
                    if self.hooks is not None:
                        await self._before(fire, job_id, msg)
                    sent.append(
                        Sent(fire, job_id, msg, await self._publisher.submit(*msg, ACK_TIMEOUT))
                    )
            except Exception as exc:
                logger.debug("{}: pipelined fire failed: {}", name, exc)
                self._retry(fire, job_id, publish=job_id != "", msg=msg)
        return sent, records

    async def _send_records(self, jobs: list[Sent]) -> list[Recording]:
        """Record the tick of each job the stream confirmed; retry the others alone."""
        records = []
        for s in jobs:
            if failed(s.ack) is not None:
                self._retry(s.fire, s.job_id, publish=True, msg=s.msg)
                continue
            self._count(s.fire, s.job_id)
            if self.hooks is not None:
                await self._after(s.fire, s.job_id, s.msg, None)
            try:
                records.append(
                    Recording(s.fire, s.job_id, await self._send_record(s.fire, s.job_id))
                )
            except Exception:
                self._retry(s.fire, s.job_id, publish=False)
        return records

    def _settle_records(self, records: list[Recording]) -> None:
        for r in records:
            if r.ack is not None:
                if failed(r.ack) is not None:
                    self._retry(r.fire, r.job_id, publish=False)
                    continue
                self._recorded(r.fire)
            self._done(r.fire, True)

    async def _is_paused(self, name: str) -> bool:
        if self.paused is not None:
            return self.paused.is_paused(name)
        return await self.state.paused(name)

    async def _send_record(self, fire: Fire, job_id: str) -> asyncio.Future[None] | None:
        """Write the tick to `last.<name>` unless a later one is there already (jittered
        fires can land out of order); None when there is nothing to write."""
        name, tick = fire.schedule.name, fire.tick
        known = self.recorded.get(name)
        if known is not None and known >= tick:
            return None
        assert self._publisher is not None
        return await self._publisher.submit(
            last_subject(name), last_value(tick, job_id), None, ACK_TIMEOUT
        )

    def _recorded(self, fire: Fire) -> None:
        name, tick = fire.schedule.name, fire.tick
        known = self.recorded.get(name)
        self.recorded[name] = tick if known is None else max(known, tick)

    async def _before(self, fire: Fire, job_id: str, msg: Message) -> None:
        """The middleware's before_enqueue (it may add headers to the fired job)."""
        assert self.hooks is not None
        schedule = fire.schedule
        message = EnqueueMessage(job_id, schedule.task, schedule.queue, msg[2])
        self._enqueuing[job_id] = message
        await self.hooks.enqueue(message)

    async def _after(
        self, fire: Fire, job_id: str, msg: Message, error: BaseException | None
    ) -> None:
        """after_enqueue, then (once the job is stored) on_schedule_fire."""
        hooks = self.hooks
        assert hooks is not None
        schedule = fire.schedule
        message = self._enqueuing.pop(job_id, None) or EnqueueMessage(
            job_id, schedule.task, schedule.queue, msg[2]
        )
        await hooks.call("after_enqueue", hooks.after_enqueue, message, error)
        if error is None:
            await hooks.call(
                "on_schedule_fire", hooks.on_schedule_fire, schedule, fire.tick, job_id
            )

    def _count(self, fire: Fire, job_id: str) -> None:
        name = fire.schedule.name
        self.fired += 1
        children = self._metrics.get(name)
        if children is None:
            m = metrics()
            children = self._metrics[name] = (
                m.schedule_fires.labels(name),
                m.schedule_last_fire.labels(name),
            )
        children[0].inc()
        children[1].set(time.time())
        if self.log_fires:
            logger.debug("fired {} for tick {}", job_id, fire.tick.isoformat())

    def _retry(self, fire: Fire, job_id: str, *, publish: bool, msg: Message | None = None) -> None:
        task = asyncio.get_running_loop().create_task(self._retry_one(fire, job_id, publish, msg))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _retry_one(self, fire: Fire, job_id: str, publish: bool, msg: Message | None) -> None:
        """The awaited path: publish (with the client's retries) and record."""
        ok = False
        name = fire.schedule.name
        try:
            async with self._retry_slots:
                if publish and msg is None and await self._is_paused(name):
                    logger.info("{}: paused, not firing {}", name, fire.tick.isoformat())
                    publish, job_id = False, ""
                if publish:
                    if msg is None:
                        msg = fire_message(self.client, fire.schedule, job_id, self.revision())
                        if self.hooks is not None:
                            await self._before(fire, job_id, msg)
                    try:
                        await self.client._publish(*msg)  # retries with the same Nats-Msg-Id
                    except Exception as exc:
                        if self.hooks is not None:
                            await self._after(fire, job_id, msg, exc)
                        raise
                    self._count(fire, job_id)
                    if self.hooks is not None:
                        await self._after(fire, job_id, msg, None)
                known = self.recorded.get(name)
                if known is None or known < fire.tick:
                    await self.state.record_fired(name, fire.tick, job_id)  # checks KV too
                    self._recorded(fire)
                ok = True
        except Exception as exc:
            logger.warning("{}: firing {} failed: {}; will retry", name, job_id, exc)
        finally:
            self._done(fire, ok)
