"""SIGHUP: re-read and validate the config file, then apply the difference to the
children (naqd/supervisor/reload.py decides what). A bad file changes nothing: the
daemon keeps running on the config it has and logs every error."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import Protocol

from loguru import logger

from naqd.config import Config, ConfigError
from naqd.supervisor.policy import Slot
from naqd.supervisor.reload import plan_reload, slot_key


class Supervised(Protocol):
    """What a reload needs of the supervisor: its config and its slots. A protocol, not
    the Supervisor class, so this module does not import the one that imports it."""

    config: Config
    slots: list[Slot]
    read_config: Callable[[], Config]  # what SIGHUP re-reads (the file, or `naqd worker` flags)


class Reloader:
    def __init__(self, supervisor: Supervised) -> None:
        self.sup = supervisor
        self.retired: list[Slot] = []  # removed slots still draining
        self.restarting: set[int] = set()  # pids stopped to come back with the new config
        self.last_ok: bool | None = None

    def reload(self) -> bool:
        path = self.sup.config.path
        logger.info("SIGHUP: reloading {}", path)
        try:
            new = self.sup.read_config()
        except ConfigError as exc:
            for issue in exc.issues:
                logger.error("reload: {}", issue)
            logger.error("reload failed: keeping the running configuration")
            self.last_ok = False
            return False
        plan = plan_reload(self.sup.config, new)
        self.sup.config = new
        self.last_ok = True
        if plan.empty:
            logger.info("reload: no child affected")
            return True
        by_key = {slot_key(s): s for s in self.sup.slots}
        for key in sorted(plan.restart):
            slot = by_key[key]
            if slot.pid is not None:
                logger.info("reload: restarting {} (pid {}) gracefully", slot.label, slot.pid)
                self.restarting.add(slot.pid)
                self._term(slot.pid)
        for key in sorted(plan.stop):
            slot = by_key[key]
            self.sup.slots.remove(slot)
            if slot.pid is not None:
                logger.info("reload: draining and stopping {} (pid {})", slot.label, slot.pid)
                self.retired.append(slot)
                self._term(slot.pid)
        for slot in plan.start:
            logger.info("reload: adding {}", slot.label)
            self.sup.slots.append(slot)
        return True

    def reaped(self, slot: Slot, exitcode: int | None) -> bool:
        """Handle the exit of a child the reload stopped; False for any other exit."""
        pid = slot.pid
        if slot in self.retired:
            self.retired.remove(slot)
            logger.info("{} stopped after reload ({})", slot.label, exitcode)
            return True
        if pid in self.restarting:
            self.restarting.discard(pid)
            slot.pid, slot.failures, slot.next_start_at = None, 0, time.monotonic()
            return True
        return False

    @staticmethod
    def _term(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
