"""Every scheduler's live copies of schedule state in KV: the code schedules
(naqd/protocol/schedules.py) and the paused flags, each fed by a KV watch so the
fire loop reads them from memory instead of asking KV on every fire."""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger

from naqd.protocol.names import CODE_SCHEDULE_PREFIX, PAUSED_SCHEDULE_PREFIX, under
from naqd.protocol.schedules import CodeSchedule, ScheduleError, decode
from naqd.transport.kvwatch import close_watch, open_watch

RESYNC = 60.0  # the watch is re-opened this often, in case it silently lost its consumer


class KeyWatch:
    """The keys under `<prefix>.` in a KV bucket, by name, fed by a watch (initial
    values, then live changes); the watch is re-opened after any error. `version`
    changes with every change, so a reader can tell cheaply that nothing changed."""

    prefix = ""

    def __init__(self, kv: Any) -> None:
        self.kv = kv
        self.values: dict[str, Any] = {}
        self.ready = asyncio.Event()  # the initial values are in
        self.stopped = False
        self.version = 0

    async def run(self) -> None:
        while not self.stopped:
            try:
                await asyncio.wait_for(self._watch(), RESYNC)
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("{} watch: {}: {}; reopening", self.prefix, type(exc).__name__, exc)
                await asyncio.sleep(1.0)

    async def _watch(self) -> None:
        watcher = await open_watch(self.kv, under(self.prefix))
        fresh: dict[str, Any] = {}
        initial = True
        try:
            async for entry in watcher:
                if entry is None:  # end of the initial values
                    if initial:
                        self.values, initial = fresh, False
                        self.version += 1
                        self.ready.set()
                    continue
                self._apply(fresh if initial else self.values, entry)
                if not initial:
                    self.version += 1
        finally:
            await close_watch(watcher)

    def _apply(self, target: dict[str, Any], entry: Any) -> None:
        name = entry.key[len(self.prefix) + 1 :]
        value = None
        if entry.operation not in ("DEL", "PURGE") and entry.value:
            value = self.decode(name, entry)
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value

    def decode(self, name: str, entry: Any) -> Any:
        """The value kept for a key, or None to drop it."""
        return entry.value


class CodeScheduleSource(KeyWatch):
    """The code schedules, by name."""

    prefix = CODE_SCHEDULE_PREFIX

    @property
    def schedules(self) -> dict[str, CodeSchedule]:
        return self.values

    def decode(self, name: str, entry: Any) -> CodeSchedule | None:
        try:
            return decode(entry.value, entry.revision or 0)
        except ScheduleError as exc:
            logger.error("ignoring code schedule {}: {}", name, exc)
            return None


class PausedSource(KeyWatch):
    """The names of the paused schedules (`naqd schedules pause`)."""

    prefix = PAUSED_SCHEDULE_PREFIX

    def is_paused(self, name: str) -> bool:
        return name in self.values
