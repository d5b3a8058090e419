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

from naqd.config import Config, load_config
from naqd.exitcodes import EXIT_CONFIG, EXIT_UNAVAILABLE
from naqd.observe import health
from naqd.observe.durability import warn_if_not_durable
from naqd.observe.health import ChildLink, ChildView
from naqd.observe.http import ObserveServer, SupervisorView
from naqd.observe.metrics import MultiprocDir
from naqd.proctitle import set_title
from naqd.scheduler import process as scheduler_process
from naqd.supervisor.embedded import SUPERVISOR_ONLY_ENV, EmbeddedNats, NotOurServer
from naqd.supervisor.policy import (
    Slot,
    after_exit,
    after_recycle,
    classify_exit,
    plan_slots,
)
from naqd.supervisor.reloading import Reloader
from naqd.supervisor.sdnotify import Notifier
from naqd.worker import process as worker_process

# What each child role runs: a picklable function (config, queue, index) -> None.
ENTRY_POINTS: dict[str, Callable[[Config, str, int], None]] = {
    "worker": worker_process.main,
    "scheduler": scheduler_process.main,
}

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
KILL_MARGIN = 5.0  # beyond grace_period, for children to nak and close their connections

# Roles whose children beat into their health cell (others count as healthy while alive).
HEARTBEAT_ROLES = frozenset({"worker", "scheduler"})


class Supervisor:
    """`burst`: run workers (no scheduler) until every queue is idle, then exit 0
    (`naqd run --burst`, docs/operations.md). `reload`: what SIGHUP re-reads, the file
    by default; `naqd worker` re-applies its flags."""

    def __init__(
        self, config: Config, reload: Callable[[], Config] | None = None, burst: bool = False
    ) -> None:
        self.config = config
        self.read_config = reload or (lambda: load_config(self.config.path))
        self.burst = burst
        self.entry_points = dict(ENTRY_POINTS)
        if burst:
            self.entry_points["worker"] = worker_process.burst_main
        self.ctx = multiprocessing.get_context("spawn")
        self.slots = plan_slots(config, burst)
        self.procs: dict[int, SpawnProcess] = {}  # pid -> process
        self.signals: list[int] = []
        self.embedded: EmbeddedNats | None = None
        self.fatal: str | None = None  # why the daemon must stop (a child's config error)
        self.fatal_code = EXIT_CONFIG
        self._wake_r, self._wake_w = os.pipe()
        self.reloader = Reloader(self)
        # Observability: health cells by pid, systemd notify, the HTTP endpoint's view.
        self.links: dict[int, ChildLink] = {}
        self.restarts: dict[str, int] = {}
        self.notifier = Notifier()
        self.metrics_dir = MultiprocDir()
        self.http: ObserveServer | None = None
        self.ready_sent = False
        self.reload_ok = True
        self.loaded_at = time.time()
        self.started_at = time.time()
        self._status = ""
        self._next_watchdog = 0.0
        self._watchdog_ok = False  # the last health reading allowed a WATCHDOG=1
        self._reload_notify = False
        self._seen: dict[tuple[str, int], str] = {}  # child states last looked at
        self.view = SupervisorView()

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
        saved = {k: os.environ.pop(k) for k in SUPERVISOR_ONLY_ENV if k in os.environ}
        link = ChildLink.create(self.ctx, self._status_path_for(slot), slot.label, slot.recycles)
        try:
            proc = self.ctx.Process(
                target=health.child_main,
                args=(self.entry_points[slot.role], link, self.config, slot.queue, slot.index),
                name=f"naqd-{slot.label}",
            )
            proc.start()
        finally:
            os.environ.update(saved)
        assert proc.pid is not None
        slot.pid, slot.started_at = proc.pid, time.monotonic()
        self.procs[proc.pid] = proc
        self.links[proc.pid] = link
        logger.info("started {} (pid {})", slot.label, proc.pid)

    def _status_path_for(self, slot: Slot) -> str | None:
        """One child per host gathers the status page's cluster data: the first worker."""
        if not self.config.metrics.enabled:
            return None
        first = next((s for s in self.slots if s.role == "worker"), None)
        return str(self.metrics_dir.path / "status.json") if slot is first else None

    def _reap(self, stopping: bool) -> None:
        for slot in [*self.slots, *self.reloader.retired]:
            proc = self.procs.get(slot.pid) if slot.pid else None
            if proc is None or proc.is_alive():
                continue
            proc.join()
            del self.procs[proc.pid]  # type: ignore[arg-type]
            self.links.pop(proc.pid, None)  # type: ignore[arg-type]
            self.metrics_dir.mark_dead(proc.pid)  # type: ignore[arg-type]
            if self.reloader.reaped(slot, proc.exitcode):
                continue
            if stopping:
                logger.info("{} exited ({})", slot.label, proc.exitcode)
                slot.pid = None
                continue
            outcome = classify_exit(proc.exitcode, self.burst)
            if outcome == "finished":
                slot.pid = None
                slot.next_start_at = float("inf")
                logger.info("{} (pid {}) finished: every queue is idle", slot.label, proc.pid)
            elif outcome == "recycled":
                after_recycle(slot, time.monotonic())
                logger.info("{} (pid {}) recycled; starting a new one", slot.label, proc.pid)
            elif outcome == "fatal" and not self.ready_sent:
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
                # A serving daemon never stops for one child: even a configuration error
                # (exit 78 after the modules changed on disk) only backs the slot off.
                at = after_exit(slot, time.monotonic())
                self.restarts[slot.role] = self.restarts.get(slot.role, 0) + 1
                log = logger.error if outcome == "fatal" else logger.warning
                log(
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
        if self.embedded is not None and self.embedded.pidfd is not None:
            handles.append(self.embedded.pidfd)
        multiprocessing.connection.wait(handles, timeout=timeout)
        self._drain_wakeups()

    def _watch_embedded(self) -> None:
        if self.embedded is None:
            return
        try:
            self.embedded.watch(time.monotonic())
        except NotOurServer as exc:
            # The children would reconnect to a server naqd does not own: stop instead.
            logger.critical("{}: stopping naqd", exc)
            self.fatal = str(exc)
            self.fatal_code = EXIT_UNAVAILABLE

    # -- lifecycle ----------------------------------------------------------------------

    def run(self) -> int:
        set_title("supervisor")
        self._install_signals()
        self.metrics_dir.prepare()
        (self.metrics_dir.path / "status.json").unlink(missing_ok=True)
        try:
            nats_cfg = self.config.nats
            if not nats_cfg.servers:
                # Before any thread exists: the server is started with a preexec hook.
                embedded = nats_cfg.embedded
                self.embedded = EmbeddedNats(
                    embedded.listen,
                    embedded.store_dir,
                    self.config.tasks.max_payload,
                    embedded.sync,
                )
                self.embedded.start()
            else:
                warn_if_not_durable(nats_cfg)
            self._start_http()
            return self._loop()
        finally:
            if self.embedded is not None:
                self.embedded.stop()
            if self.http is not None:
                self.http.stop()
            self.metrics_dir.cleanup()

    def _loop(self) -> int:
        logger.info("naqd supervisor starting {} child process(es)", len(self.slots))
        self.notifier.status(f"starting {len(self.slots)} child process(es)")
        while True:
            while self.signals:
                sig = self.signals.pop(0)
                if sig in STOP_SIGNALS:
                    logger.info("received {}: draining children", signal.Signals(sig).name)
                    return self._shutdown()
                self._reload()
            self._reap(stopping=False)
            self._watch_embedded()
            if self.fatal is not None:
                self._shutdown()
                return self.fatal_code
            if self.burst and all(s.next_start_at == float("inf") for s in self.slots):
                logger.info("burst finished: every queue is idle")
                return self._shutdown()
            self._start_due()
            self._observe()
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
        self.notifier.stopping()
        self._signal_children(signal.SIGTERM)
        while self.procs and time.monotonic() < deadline:
            self._wait(min(1.0, max(0.0, deadline - time.monotonic())))
            while self.signals:
                sig = self.signals.pop(0)
                if sig in STOP_SIGNALS:
                    logger.warning("second stop signal: children nak their jobs and exit now")
                    self._signal_children(signal.SIGTERM)
            self._reap(stopping=True)
            self._publish_view()
        if self.procs:
            logger.error("{} child(ren) did not stop in time: SIGKILL", len(self.procs))
            self._signal_children(signal.SIGKILL)
            for proc in self.procs.values():
                proc.join(5)
        logger.info("naqd stopped")
        return 0

    # -- reload, health, systemd --------------------------------------------------------

    def _reload(self) -> None:
        """SIGHUP: tell systemd, then let the Reloader validate and apply the file; a bad
        file keeps the running config (naqd_config_last_reload_successful 0)."""
        self.notifier.reloading()
        self.reload_ok = self.reloader.reload()
        if self.reload_ok:
            self.loaded_at = time.time()
        self._publish_view()
        self._reload_notify = True  # READY=1 once the replacements have rolled

    def _publish_view(self) -> None:
        children = tuple(
            ChildView(
                label=s.label,
                role=s.role,
                queue=_served(self.config, s),
                pool=s.queue if s.pool else "",
                index=s.index,
                pid=s.pid,
                started_at=s.started_at,
                link=self.links.get(s.pid) if s.pid else None,
                tracked=s.role in HEARTBEAT_ROLES,
                lost_at=s.lost_at,
            )
            for s in self.slots
        )
        emb = self.embedded
        self.view = SupervisorView(
            children=children,
            restarts=dict(self.restarts),
            reload_ok=self.reload_ok,
            reload_at=self.loaded_at,
            stale_after=3 * self.config.heartbeat.interval,
            started_at=self.started_at,
            health_grace=self.config.metrics.health_grace,
            nats_server=None if emb is None else ("up" if emb.up else "down"),
            nats_server_pid=None if emb is None else emb.pid,
            nats_server_restarts=0 if emb is None else emb.restarts,
        )

    def _observe(self) -> None:
        """Each tick: refresh the HTTP view, READY=1 once every child is up, STATUS= on
        change, WATCHDOG=1 only while every running child's loop beats."""
        self._publish_view()
        kids = self.view.health()
        for slot, kid in zip(self.slots, kids, strict=True):
            if kid.state == "healthy":
                slot.lost_at = None  # back: the next loss starts a new grace
        self.reloader.tick({k.label: k for k in kids})
        if self._reload_notify and not self.reloader.in_progress:
            self._reload_notify = False
            self.notifier.ready(self._status or "running")
        nats_down = self.view.nats_server == "down"
        self._seen, events = health.stale_events(self._seen, kids, self.view.stale_after)
        for level, message in events:
            logger.log(level, message)
        if not self.ready_sent and health.all_ready(kids):
            self.ready_sent = True
            self._status = _status_line(kids)
            self.notifier.ready(self._status)
            logger.info("all {} child process(es) ready", len(kids))
        elif self.ready_sent:
            line = _status_line(kids)
            if nats_down:
                line += "; embedded nats-server down, restarting"
            if line != self._status:
                self._status = line
                self.notifier.status(line)
        # A dead embedded server starves the watchdog: naqd restarts it at once, so one
        # that stays down for WatchdogSec is something a restart of naqd may fix.
        self._watchdog_ok = health.watchdog_ok(kids) and not nats_down
        self.still_alive()

    def still_alive(self) -> None:
        """WATCHDOG=1 when due and the last health reading allows it. Also called while
        the loop waits on a reload's check (naqd/supervisor/preflight.py)."""
        interval = self.notifier.watchdog_interval
        now = time.monotonic()
        if interval and now >= self._next_watchdog and self._watchdog_ok:
            self.notifier.watchdog()
            self._next_watchdog = now + interval

    def _start_http(self) -> None:
        cfg = self.config.metrics
        if not cfg.enabled:
            return
        self.http = ObserveServer(
            cfg.listen,
            lambda: self.view,
            self.metrics_dir.path,
            self.metrics_dir.path / "status.json",
        )
        try:
            self.http.start()
        except OSError as exc:
            # Jobs matter more than the dashboard: run on, loudly (Prometheus shows up=0).
            logger.error("cannot serve metrics on {}: {}", cfg.listen, exc)
            self.http = None
        else:
            logger.info("metrics, health and status page on {}", self.http.url)

    def _signal_children(self, sig: int) -> None:
        for pid in list(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def _status_line(kids: list[health.ChildHealth]) -> str:
    """systemctl status: 'running: 3/3 children healthy' or what is wrong."""
    ok = sum(1 for k in kids if k.state == "healthy")
    bad = [f"{k.label} {k.state}" for k in kids if k.state != "healthy"]
    line = f"running: {ok}/{len(kids)} children healthy"
    return f"{line}; {', '.join(bad)}" if bad else line


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def _served(config: Config, slot: Slot) -> str:
    """The queues a worker slot serves, as its metrics label: one, or a pool's, joined."""
    pool = config.pools.get(slot.queue) if slot.pool else None
    return ",".join(pool.queues) if pool is not None else slot.queue
