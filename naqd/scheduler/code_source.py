"""Every scheduler's live copy of the code schedules (naqd/scheduler/code_schedules.py)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from loguru import logger

from naqd.protocol.names import CODE_SCHEDULE_PREFIX
from naqd.scheduler.code_schedules import CodeSchedule, ScheduleError, decode, name_of

RESYNC = 60.0  # the watch is re-opened this often, in case it silently lost its consumer


class CodeScheduleSource:
    """Every scheduler's current copy of the code schedules, fed by a KV watch (initial
    values, then live changes); the watch is re-opened after any error."""

    def __init__(self, kv: Any) -> None:
        self.kv = kv
        self.schedules: dict[str, CodeSchedule] = {}
        self.ready = asyncio.Event()  # the initial values are in
        self.stopped = False

    async def run(self) -> None:
        while not self.stopped:
            try:
                await asyncio.wait_for(self._watch(), RESYNC)
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("code schedule watch: {}: {}; reopening", type(exc).__name__, exc)
                await asyncio.sleep(1.0)

    async def _watch(self) -> None:
        watcher = await self.kv.watch(f"{CODE_SCHEDULE_PREFIX}.>")
        fresh: dict[str, CodeSchedule] = {}
        initial = True
        try:
            async for entry in watcher:
                if entry is None:  # end of the initial values
                    if initial:
                        self.schedules, initial = fresh, False
                        self.ready.set()
                    continue
                target = fresh if initial else self.schedules
                self._apply(target, entry)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()

    def _apply(self, target: dict[str, CodeSchedule], entry: Any) -> None:
        name = name_of(entry.key)
        if entry.operation in ("DEL", "PURGE") or not entry.value:
            target.pop(name, None)
            return
        try:
            target[name] = decode(entry.value, entry.revision or 0)
        except ScheduleError as exc:
            logger.error("ignoring code schedule {}: {}", name, exc)
            target.pop(name, None)
