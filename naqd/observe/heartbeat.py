"""A child's heartbeats, both from its event loop: a local beat into the shared health
cell every fraction of a second (the supervisor's /healthz and systemd watchdog), and a
record in the heartbeats KV bucket every `heartbeat.interval` (`naqd workers`).

The bucket keeps a record 3 intervals after its last put, so a SIGKILLed process
vanishes by itself; a clean stop deletes its record at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from loguru import logger
from nats.aio.client import Client as NATS

from naqd.config import Config
from naqd.observe.health import ChildLink, current_link
from naqd.observe.metrics import JobObserver, metrics
from naqd.observe.queuegauges import pause_change, read_queue
from naqd.protocol.names import HEARTBEATS_BUCKET, heartbeat_key
from naqd.transport.cancelling import cancel_and_wait

PUT_TIMEOUT = 2.0
RATE_WINDOW = 60.0  # s of beats the per-minute rates are measured over
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    """This process's resident memory (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def version() -> str:
    from naqd import __version__

    return __version__


class Heartbeat:
    """Start it first thing in the child's loop (the local beat says "booting"), attach the
    connection once the child serves, stop it after draining."""

    def __init__(
        self,
        config: Config,
        role: str,
        *,
        queues: tuple[str, ...] = (),
        index: int = 0,
        concurrency: int = 0,
        pool: str = "",
        slots: dict[str, int] | None = None,
        link: ChildLink | None = None,
    ) -> None:
        self.config = config
        self.role = role
        self.queues = queues
        self.index = index
        self.concurrency = concurrency
        self.pool = pool  # the pool this worker process serves, "" for one queue
        self.slots = dict(slots or {})  # each queue's own concurrency in this process
        self.link = link if link is not None else current_link()
        self.interval = config.heartbeat.interval
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.key = heartbeat_key(self.host, role, self.pid)
        self.started_at = time.time()
        self.nc: NATS | None = None
        self.observers: tuple[JobObserver, ...] = ()
        self.extra: Callable[[], dict[str, Any]] | None = None
        self.depth_queues: tuple[str, ...] = ()
        self._tasks: list[asyncio.Task[None]] = []
        self._kv: Any = None
        self._paused: dict[str, bool] = {}  # each depth queue's paused state, last seen
        # (time, done, failed) per queue ("" for the whole process)
        self._samples: dict[str, deque[tuple[float, int, int]]] = {}

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._beat_local()))

    def attach(
        self,
        nc: NATS,
        observers: Sequence[JobObserver] = (),
        *,
        depth_queues: Sequence[str] = (),
        extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        """The child is ready: beat as ready, start the KV record. `observers`: one per
        queue served. `depth_queues`: also export these queues' pending / in-flight
        gauges (one child per queue or pool does)."""
        self.nc, self.observers, self.extra = nc, tuple(observers), extra
        self.depth_queues = tuple(depth_queues)
        self._tasks.append(asyncio.get_running_loop().create_task(self._beat_kv()))

    async def stop(self) -> None:
        """Stop beating and delete the KV record (while the connection is still open)."""
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        if self._kv is None or self.nc is None or not self.nc.is_connected:
            return  # the record expires by itself after 3 intervals
        for attempt in (1, 2):
            try:
                await asyncio.wait_for(self._kv.delete(self.key), 2 * PUT_TIMEOUT)
                return
            except Exception as exc:
                logger.warning("deleting heartbeat {} (attempt {}): {!r}", self.key, attempt, exc)

    # -- the two beats ------------------------------------------------------------------

    async def _beat_local(self) -> None:
        if self.link is None:
            return
        tick = min(1.0, self.interval / 3)
        while True:
            connected = self.nc is not None and self.nc.is_connected
            self.link.beat(connected=connected, ready=self.nc is not None)
            await asyncio.sleep(tick)

    async def _beat_kv(self) -> None:
        while True:
            if self.nc is not None and self.nc.is_connected:
                try:
                    await asyncio.wait_for(self._once(), max(PUT_TIMEOUT, self.interval))
                except Exception as exc:
                    logger.debug("heartbeat failed: {}", exc)
            await asyncio.sleep(self.interval)

    async def _once(self) -> None:
        assert self.nc is not None
        js = self.nc.jetstream()
        if self._kv is None:
            self._kv = await js.key_value(HEARTBEATS_BUCKET)
        await self._kv.put(self.key, json.dumps(self.record()).encode())
        for name in self.depth_queues:
            await self._queue_gauges(js, name)
        if self.link is not None and self.link.status_path:
            await self._write_status(self.link.status_path)

    async def _queue_gauges(self, js: Any, name: str) -> None:
        queue = self.config.queues.get(name)
        levels = queue.priorities if queue is not None else ()
        reading = await read_queue(js, name, levels, time.time())
        m = metrics()
        m.queue_pending.labels(name).set(reading.pending)
        m.queue_in_flight.labels(name).set(reading.in_flight)
        m.queue_paused.labels(name).set(1 if reading.paused else 0)
        m.queue_lag.labels(name).set(round(reading.lag, 3))
        m.dead_letters.labels(name).set(reading.dead)
        change = pause_change(self._paused.get(name), reading.paused)
        self._paused[name] = reading.paused
        if change == "paused":
            logger.warning(
                "queue {} is paused: workers take no new jobs ({} waiting)", name, reading.pending
            )
        elif change == "resumed":
            logger.info("queue {} resumed ({} waiting)", name, reading.pending)

    async def _write_status(self, path: str) -> None:
        """The status page's data, gathered here because the supervisor has no NATS."""
        from naqd.observe.status import collect_status

        assert self.nc is not None
        snapshot = await collect_status(self.nc, self.config)
        tmp = Path(f"{path}.tmp")
        tmp.write_text(json.dumps(snapshot, default=str))
        tmp.replace(path)

    def rates(self, done: int, failed: int, now: float, key: str = "") -> tuple[float, float]:
        """Jobs done and failed per minute, over the last minute of beats (per beat, not
        per job: nothing is added to a job's cost); `key`: one queue of a pool."""
        samples = self._samples.setdefault(key, deque())
        samples.append((now, done, failed))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW:
            samples.popleft()
        t0, d0, f0 = samples[0]
        span = now - t0
        if span <= 0:
            return 0.0, 0.0
        return round((done - d0) * 60 / span, 1), round((failed - f0) * 60 / span, 1)

    def record(self) -> dict[str, Any]:
        obs = self.observers
        now = time.time()
        done = sum(o.done for o in obs)
        failed = sum(o.failed for o in obs)
        done_rate, failed_rate = self.rates(done, failed, now)
        record = {
            "host": self.host,
            "pid": self.pid,
            "role": self.role,
            "queues": list(self.queues),
            "index": self.index,
            "concurrency": self.concurrency,
            "running": sorted(job for o in obs for job in o.running),
            "done": done,
            "failed": failed,
            "done_per_min": done_rate,
            "failed_per_min": failed_rate,
            "memory_rss": rss_bytes(),
            "recycles": self.link.recycles if self.link is not None else 0,
            "started_at": self.started_at,
            "last_heartbeat": now,
            "interval": self.interval,
            "version": version(),
            "extra": self.extra() if self.extra else {},
        }
        if self.role == "worker":
            record["pool"] = self.pool or None
            record["slots"] = dict(self.slots)
            record["busy"] = {o.queue: len(o.running) for o in obs}
            # Per queue, so a pool's console row counts each queue's own jobs.
            record["queue_rates"] = {
                o.queue: dict(zip(("done_per_min", "failed_per_min"),
                                  self.rates(o.done, o.failed, now, o.queue), strict=True))
                for o in obs
            }  # fmt: skip
        return record
