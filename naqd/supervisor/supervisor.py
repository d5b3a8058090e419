"""The supervisor: a small synchronous loop. It holds no NATS connection and no event
loop, never imports task code, and starts children with `spawn` so none inherits one."""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.context import SpawnProcess

from loguru import logger

from naqd.config import Config
from naqd.supervisor.embedded import EmbeddedNats
from naqd.supervisor.policy import (
    EXIT_CONFIG,
    Slot,
    after_exit,
    after_recycle,
    classify_exit,
    plan_slots,
)
from naqd.worker import process as worker_process

# What each child role runs: a picklable function (config, queue, index) -> None.
ENTRY_POINTS: dict[str, Callable[[Config, str, int], None]] = {
    "worker": worker_process.main,
}

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
KILL_MARGIN = 5.0  # beyond grace_period, for children to nak and close their connections

# Only the supervisor talks to systemd; children must not see its notify socket.
_SUPERVISOR_ONLY_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class Supervisor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.ctx = multiprocessing.get_context("spawn")
        self.slots = plan_slots(config)
        self.procs: dict[int, SpawnProcess] = {}  # pid -> process
        self.signals: list[int] = []
        self.embedded: EmbeddedNats | None = None
        self.fatal: str | None = None  # why the daemon must stop (a child's config error)
        self._wake_r, self._wake_w = os.pipe()

    # -- signals: handlers only record; the loop acts -----------------------------------

    def _install_signals(self) -> None:
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in (*STOP_SIGNALS, signal.SIGHUP):
            signal.signal(sig, lambda signum, _frame: self.signals.append(signum))

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    # -- children -----------------------------------------------------------------------

    def _spawn(self, slot: Slot) -> None:
        saved = {k: os.environ.pop(k) for k in _SUPERVISOR_ONLY_ENV if k in os.environ}
        try:
            proc = self.ctx.Process(
                target=ENTRY_POINTS[slot.role],
                args=(self.config, slot.queue, slot.index),
                name=f"naqd-{slot.label}",
            )
            proc.start()
        finally:
            os.environ.update(saved)
        assert proc.pid is not None
        slot.pid, slot.started_at = proc.pid, time.monotonic()
        self.procs[proc.pid] = proc
        logger.info("started {} (pid {})", slot.label, proc.pid)

    def _reap(self, stopping: bool) -> None:
        for slot in self.slots:
            proc = self.procs.get(slot.pid) if slot.pid else None
            if proc is None or proc.is_alive():
                continue
            proc.join()
            del self.procs[proc.pid]  # type: ignore[arg-type]
            if stopping:
                logger.info("{} exited ({})", slot.label, proc.exitcode)
                slot.pid = None
                continue
            outcome = classify_exit(proc.exitcode)
            if outcome == "recycled":
                after_recycle(slot, time.monotonic())
                logger.info("{} (pid {}) recycled; starting a new one", slot.label, proc.pid)
            elif outcome == "fatal":
                slot.pid = None
                slot.next_start_at = float("inf")
                self.fatal = f"{slot.label} failed at boot with a configuration error"
                logger.critical(
                    "{} (pid {}) cannot start because of the configuration (see above): "
                    "stopping naqd with exit code {}",
                    slot.label,
                    proc.pid,
                    EXIT_CONFIG,
                )
            else:
                at = after_exit(slot, time.monotonic())
                logger.warning(
                    "{} (pid {}) died with {}; restart #{} in {:.1f}s",
                    slot.label,
                    proc.pid,
                    _describe_exit(proc.exitcode),
                    slot.failures,
                    at - time.monotonic(),
                )

    def _start_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.pid is None and slot.next_start_at <= now:
                self._spawn(slot)

    def _wait(self, timeout: float) -> None:
        handles: list[int] = [self._wake_r]
        handles += [p.sentinel for p in self.procs.values()]
        multiprocessing.connection.wait(handles, timeout=timeout)
        self._drain_wakeups()

    # -- lifecycle ----------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        nats_cfg = self.config.nats
        if not nats_cfg.servers:
            embedded = nats_cfg.embedded
            self.embedded = EmbeddedNats(embedded.listen, embedded.store_dir)
            self.embedded.start()
        try:
            return self._loop()
        finally:
            if self.embedded is not None:
                self.embedded.stop()

    def _loop(self) -> int:
        logger.info("naqd supervisor starting {} child process(es)", len(self.slots))
        while True:
            while self.signals:
                sig = self.signals.pop(0)
                if sig in STOP_SIGNALS:
                    logger.info("received {}: draining children", signal.Signals(sig).name)
                    return self._shutdown()
                logger.info("SIGHUP: reload is not supported yet; ignoring")
            self._reap(stopping=False)
            if self.fatal is not None:
                self._shutdown()
                return EXIT_CONFIG
            self._start_due()
            pending = [
                s.next_start_at
                for s in self.slots
                if s.pid is None and s.next_start_at < float("inf")
            ]
            timeout = max(0.0, min(pending) - time.monotonic()) if pending else 1.0
            self._wait(min(timeout, 1.0))

    def _shutdown(self) -> int:
        grace = self.config.shutdown.grace_period
        deadline = time.monotonic() + grace + KILL_MARGIN
        self._signal_children(signal.SIGTERM)
        while self.procs and time.monotonic() < deadline:
            self._wait(min(1.0, max(0.0, deadline - time.monotonic())))
            while self.signals:
                sig = self.signals.pop(0)
                if sig in STOP_SIGNALS:
                    logger.warning("second stop signal: children nak their jobs and exit now")
                    self._signal_children(signal.SIGTERM)
            self._reap(stopping=True)
        if self.procs:
            logger.error("{} child(ren) did not stop in time: SIGKILL", len(self.procs))
            self._signal_children(signal.SIGKILL)
            for proc in self.procs.values():
                proc.join(5)
        logger.info("naqd stopped")
        return 0

    def _signal_children(self, sig: int) -> None:
        for pid in list(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"
