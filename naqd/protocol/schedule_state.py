"""Schedule state in KV, shared by the scheduler child and the CLI: the last fired tick
of each schedule (so a new leader continues where the old one stopped), pauses, and
who leads."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyNotFoundError

from naqd.models import ScheduleConfig
from naqd.protocol import schedules as code_schedules
from naqd.protocol.names import (
    LEADER_BUCKET,
    LEADER_KEY,
    SCHEDULES_BUCKET,
    YAML_NAMES_KEY,
    YAML_SCHEDULES_KEY,
    code_schedule_key,
    kv_subject,
    last_tick_key,
    paused_key,
)
from naqd.protocol.schedules import CodeSchedule
from naqd.protocol.ticks import parse_stamp, tick_stamp
from naqd.transport.kvwatch import close_watch, open_watch


def last_value(tick: datetime, job_id: str) -> bytes:
    """The `last.<name>` record: the tick, its job id ("" when paused), when. Written
    for every fire, so formatted directly (a stamp needs no JSON escaping)."""
    stamp, job, now = tick_stamp(tick), json.dumps(job_id), time.time()
    return f'{{"tick": "{stamp}", "job_id": {job}, "fired_at": {now!r}}}'.encode()


def last_subject(name: str) -> str:
    """The KV subject of `last.<name>`, for a pipelined write (publish without awaiting)."""
    return kv_subject(SCHEDULES_BUCKET, last_tick_key(name))


@dataclass(frozen=True)
class LeaderInfo:
    host: str
    pid: int
    since: float  # wall-clock time the lease was won
    revision: int = 0


def leader_value(since: float) -> bytes:
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": since}).encode()


class ScheduleState:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._kv: Any = None
        self._leader_kv: Any = None

    async def kv(self) -> Any:
        if self._kv is None:
            self._kv = await self.js.key_value(SCHEDULES_BUCKET)
        return self._kv

    async def leader_kv(self) -> Any:
        if self._leader_kv is None:
            self._leader_kv = await self.js.key_value(LEADER_BUCKET)
        return self._leader_kv

    async def _get(self, key: str) -> bytes | None:
        """None also when no scheduler ever ran here (no bucket): nothing is recorded."""
        try:
            entry = await (await self.kv()).get(key)
        except (KeyNotFoundError, BucketNotFoundError):
            return None
        return entry.value or None  # a deleted key reads as empty

    async def last_fired(self, name: str) -> datetime | None:
        raw = await self._get(last_tick_key(name))
        if raw is None:
            return None
        try:
            return parse_stamp(json.loads(raw)["tick"])
        except (ValueError, KeyError, TypeError):
            return None

    async def record_fired(self, name: str, tick: datetime, job_id: str) -> None:
        """Store the tick unless a later one is stored already (jittered fires can land
        out of order)."""
        previous = await self.last_fired(name)
        if previous is not None and previous >= tick:
            return
        await (await self.kv()).put(last_tick_key(name), last_value(tick, job_id))

    async def last_record(self, name: str) -> dict[str, Any] | None:
        raw = await self._get(last_tick_key(name))
        return json.loads(raw) if raw else None

    async def paused(self, name: str) -> bool:
        return await self._get(paused_key(name)) is not None

    async def pause(self, name: str) -> None:
        value = json.dumps({"at": time.time()}).encode()
        await (await self.kv()).put(paused_key(name), value)

    async def resume(self, name: str) -> None:
        await (await self.kv()).delete(paused_key(name))

    # -- YAML names (published by the leader) and code schedules ------------------------

    async def set_yaml_names(self, names: list[str]) -> None:
        await (await self.kv()).put(YAML_NAMES_KEY, json.dumps(names).encode())

    async def yaml_names(self) -> set[str]:
        raw = await self._get(YAML_NAMES_KEY)
        try:
            return set(json.loads(raw)) if raw else set()
        except (ValueError, TypeError):
            return set()

    async def set_yaml_schedules(self, schedules: list[ScheduleConfig]) -> None:
        """The leader's effective YAML schedules (disabled ones too), so a console or CLI
        on any host lists, triggers and pauses them without the YAML file."""
        defs = [
            {**json.loads(code_schedules.encode(s, 0.0)), "enabled": s.enabled} for s in schedules
        ]
        await (await self.kv()).put(YAML_SCHEDULES_KEY, json.dumps(defs).encode())

    async def yaml_schedules(self) -> list[ScheduleConfig]:
        """What the last leader published; [] before any did (or for an older leader)."""
        raw = await self._get(YAML_SCHEDULES_KEY)
        try:
            defs = json.loads(raw) if raw else []
        except ValueError:
            return []
        found = []
        for d in defs if isinstance(defs, list) else []:
            if not isinstance(d, dict):
                continue
            with contextlib.suppress(code_schedules.ScheduleError):
                s = code_schedules.decode(json.dumps(d).encode()).schedule
                found.append(replace(s, enabled=bool(d.get("enabled", True))))
        return sorted(found, key=lambda s: s.name)

    async def code_get(self, name: str) -> CodeSchedule | None:
        try:
            entry = await (await self.kv()).get(code_schedule_key(name))
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return code_schedules.decode(entry.value, entry.revision or 0)

    async def code_put(self, schedule: ScheduleConfig, last: int | None = None) -> int:
        """Store a definition; with `last`, only if it is still at that revision."""
        kv = await self.kv()
        value = code_schedules.encode(schedule)
        key = code_schedule_key(schedule.name)
        if last is not None:
            return int(await kv.update(key, value, last=last))
        return int(await kv.put(key, value))

    async def code_remove(self, name: str) -> bool:
        """Delete a definition and its state; False when there was none."""
        if await self.code_get(name) is None:
            return False
        kv = await self.kv()
        await kv.delete(code_schedule_key(name))
        for key in (paused_key(name), last_tick_key(name)):
            if await self._get(key) is not None:
                await kv.delete(key)
        return True

    async def code_list(self) -> list[CodeSchedule]:
        kv = await self.kv()
        watcher = await open_watch(kv, code_schedule_key(">"), ignore_deletes=True)
        found = []
        try:
            async for entry in watcher:
                if entry is None:
                    break
                if entry.value:
                    with contextlib.suppress(code_schedules.ScheduleError):
                        found.append(code_schedules.decode(entry.value, entry.revision or 0))
        finally:
            await close_watch(watcher)
        return sorted(found, key=lambda c: c.name)

    async def leader(self) -> LeaderInfo | None:
        try:
            entry = await (await self.leader_kv()).get(LEADER_KEY)
        except (KeyNotFoundError, BucketNotFoundError):  # no scheduler ever ran here
            return None
        if not entry.value:
            return None
        try:
            d = json.loads(entry.value)
            return LeaderInfo(d["host"], int(d["pid"]), float(d["since"]), entry.revision or 0)
        except (ValueError, KeyError, TypeError):
            return None
