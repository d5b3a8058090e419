"""SIGHUP: re-read and validate the config file, then apply the difference to the
children (naqd/supervisor/reload.py decides what). A reload never stops a serving daemon:

- a file that does not load, or whose task modules or key file a child could not boot
  with (checked in a throw-away process, naqd/supervisor/preflight.py), changes nothing;
- affected children are replaced one at a time, replacement first: the new process
  starts while the old one drains, and the next is replaced only once the new one is
  ready, so a queue never loses its capacity;
- a child started on the new config that exits 78 (EX_CONFIG) rolls the whole reload
  back: the previous config is restored and the children already replaced are replaced
  again with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from loguru import logger

from naqd.config import Config, ConfigError
from naqd.exitcodes import EXIT_CONFIG
from naqd.supervisor.policy import Slot
from naqd.supervisor.preflight import preflight
from naqd.supervisor.reload import ReloadPlan, SlotKey, plan_reload, slot_key

if TYPE_CHECKING:
    from naqd.observe.health import ChildHealth

# A replacement counts as ready once it has booted (connected, resources ensured).
READY_STATES = ("healthy", "disconnected")


class Supervised(Protocol):
    """What a reload needs of the supervisor. A protocol, not the Supervisor class, so
    this module does not import the one that imports it."""

    config: Config
    slots: list[Slot]
    read_config: Callable[[], Config]  # what SIGHUP re-reads (the file, or `naqd worker` flags)
    ctx: Any  # the spawn context, for the throw-away preflight process
    reload_ok: bool

    def still_alive(self) -> None:
        """Tell systemd's watchdog the supervisor is alive while a reload waits."""


class Reloader:
    def __init__(self, supervisor: Supervised) -> None:
        self.sup = supervisor
        self.retired: list[Slot] = []  # old processes draining (replaced or removed slots)
        self.rolling: list[SlotKey] = []  # slots still to be replaced, in order
        self.waiting: Slot | None = None  # the slot whose replacement must be ready first
        self.stable: Config | None = None  # what a failed roll goes back to
        self.converted: set[SlotKey] = set()  # slots started on the config being rolled out
        self.added: list[Slot] = []  # slots the reload added: on trial until ready
        self.last_ok: bool | None = None

    @property
    def in_progress(self) -> bool:
        """Replacements are still rolling (READY=1 waits for the end)."""
        return self.stable is not None or bool(self.rolling) or self.waiting is not None

    def reload(self) -> bool:
        path = self.sup.config.path
        logger.info("SIGHUP: reloading {}", path)
        try:
            new = self.sup.read_config()
        except ConfigError as exc:
            for issue in exc.issues:
                logger.error("reload: {}", issue)
            return self._reject("the file is invalid")
        why = preflight(self.sup.ctx, new, alive=self.sup.still_alive)
        if why:
            return self._reject(why)
        plan = plan_reload(self.sup.config, new)
        if self.stable is None:
            self.stable = self.sup.config
        self.sup.config = new
        self.last_ok = True
        if plan.empty:
            logger.info("reload: no child affected")
        self._apply(plan, mark=True)
        return True

    def _reject(self, why: str) -> bool:
        logger.error("reload failed: keeping the running configuration ({})", why)
        self.last_ok = False
        return False

    def _apply(self, plan: ReloadPlan, mark: bool) -> None:
        for key in sorted(plan.stop):
            slot = self._slot(key)
            if slot is None:
                continue
            self.sup.slots.remove(slot)
            if slot.pid is not None:
                logger.info("reload: draining and stopping {} (pid {})", slot.label, slot.pid)
                self._retire(slot)
        for slot in plan.start:
            logger.info("reload: adding {}", slot.label)
            self.sup.slots.append(slot)
            if mark:
                self.converted.add(slot_key(slot))
                self.added.append(slot)
        for key in sorted(plan.restart):
            if key not in self.rolling:
                self.rolling.append(key)

    def tick(self, health: dict[str, ChildHealth]) -> None:
        """Each supervisor tick: replace the next slot once the last replacement is ready."""
        if self.waiting is not None:
            h = health.get(self.waiting.label)
            present = any(s is self.waiting for s in self.sup.slots)
            if present and (h is None or h.state not in READY_STATES):
                return
            self.waiting = None
        while self.rolling:
            slot = self._slot(self.rolling.pop(0))
            if slot is None:
                continue
            if self.stable is not None:
                self.converted.add(slot_key(slot))
            if slot.pid is None:
                continue  # down: it starts on the current config anyway
            logger.info(
                "reload: replacing {} (pid {}): the new one starts first", slot.label, slot.pid
            )
            self._retire(slot)
            now = time.monotonic()
            slot.pid, slot.failures, slot.next_start_at, slot.lost_at = None, 0, now, now
            self.waiting = slot
            return
        self.added = [
            s
            for s in self.added
            if any(s is t for t in self.sup.slots)
            and (health.get(s.label) is None or health[s.label].state not in READY_STATES)
        ]
        if self.stable is not None and not self.added:
            logger.info("reload complete")
            self.stable = None
            self.converted.clear()

    def reaped(self, slot: Slot, exitcode: int | None) -> bool:
        """Handle the exit of a child the reload stopped or is trying out; False for any
        other exit (the supervisor's usual policy applies)."""
        for i, old in enumerate(self.retired):
            if old is slot:
                del self.retired[i]
                logger.info("{} stopped after reload (pid {}, {})", slot.label, slot.pid, exitcode)
                slot.pid = None
                return True
        if exitcode == EXIT_CONFIG and self.stable is not None and slot_key(slot) in self.converted:
            self._roll_back(slot)
            return True
        return False

    def _roll_back(self, failed: Slot) -> None:
        bad, good = self.sup.config, self.stable
        assert good is not None
        logger.error(
            "reload: {} (pid {}) cannot start with the new configuration (exit code {}): "
            "rolling back to the previous one",
            failed.label,
            failed.pid,
            EXIT_CONFIG,
        )
        self.sup.config = good
        self.sup.reload_ok = self.last_ok = False
        now = time.monotonic()
        failed.pid, failed.failures, failed.next_start_at = None, 0, now
        plan = plan_reload(bad, good)
        redo = [k for k in sorted(plan.restart) if k in self.converted and k != slot_key(failed)]
        self.rolling, self.waiting, self.added = [], None, []
        self.stable, self.converted = None, set()
        self._apply(ReloadPlan(restart=set(redo), stop=plan.stop, start=plan.start), mark=False)

    def _retire(self, slot: Slot) -> None:
        """Let the slot's current process drain and stop; it is reaped from `retired`."""
        assert slot.pid is not None
        self.retired.append(replace(slot))
        with contextlib.suppress(ProcessLookupError):
            os.kill(slot.pid, signal.SIGTERM)

    def _slot(self, key: SlotKey) -> Slot | None:
        return next((s for s in self.sup.slots if slot_key(s) == key), None)
