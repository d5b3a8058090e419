"""Delayed and cron scale: what 100,000 pending delayed jobs and 1,000 cron schedules
cost naqd while they wait, and how late they fire. Each daemon runs one worker and the
scheduler (default lease); CPU is read per process (roles from the heartbeat keys).

- Idle with delayed jobs: the jobs held by nats-server an hour ahead, no schedules;
  CPU of naqd (scheduler and worker apart) and of nats-server over a quiet window.
- Delayed lateness: on that daemon, a batch of delayed jobs all due on the same whole
  second a few seconds ahead; each job's `started_at` (its result record) minus the due
  time. The server's resolution is one second and naqd never fires early.
- Idle with schedules: a second daemon with the cron schedules, all due half a day
  ahead (distinct times), the delayed jobs still pending; CPU over a quiet window.
- Cron lateness: a third daemon whose schedules all fire every second (`* * * * * *`);
  for each tick, the job's `enqueued_at` (the scheduler's fire) and `started_at` minus
  the tick, read from the job id `cron.<name>.<tick>` and the result record; and the
  share of the ticks that fired at all (a tick fired over 2 s late counts as missed).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats

from bench.daemon import BenchDaemon, child_roles, cpu_of, nats_server_pid
from bench.fill import fill_delayed
from bench.procstat import cpu_seconds
from naqd.protocol.envelope import ResultRecord, decode_result
from naqd.protocol.names import (
    JOBS_STREAM,
    RESULTS_BUCKET,
    SCHEDULES_BUCKET,
    YAML_NAMES_KEY,
)
from naqd.protocol.ticks import parse_stamp

QUEUE = "sched"
DUE_AHEAD = 3  # s: a delayed batch is due this long after it is stored (whole seconds)


class Records:
    """Final result records of the jobs matching `pattern` (a KV key pattern), as the
    workers store them: a core subscription on the results bucket's subjects."""

    def __init__(self) -> None:
        self.items: dict[str, ResultRecord] = {}
        self.sub: Any = None

    async def subscribe(self, nc: Any, pattern: str) -> Records:
        self.sub = await nc.subscribe(f"$KV.{RESULTS_BUCKET}.{pattern}", cb=self._on)
        return self

    async def _on(self, msg: Any) -> None:
        try:
            rec = decode_result(msg.data)
        except Exception:
            return
        if rec.done:
            self.items[rec.id] = rec

    async def wait(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.items) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self.sub.unsubscribe()


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    s = sorted(samples) or [float("nan")]
    return {
        "min": s[0],
        "p50": s[len(s) // 2],
        "p99": s[min(len(s) - 1, int(len(s) * 0.99))],
        "max": s[-1],
        "n": len(samples),
    }


class CpuMeter:
    """CPU seconds per role over a window: naqd (its whole tree), its scheduler and
    workers apart, and nats-server."""

    def __init__(self, daemon: BenchDaemon, roles: dict[int, str], server: int) -> None:
        self.groups = {
            "naqd": daemon.tree_pids(),
            "naqd_scheduler": [p for p, r in roles.items() if r == "scheduler"],
            "naqd_workers": [p for p, r in roles.items() if r == "worker"],
            "nats": [server],
        }
        self.t0 = 0.0
        self.cpu0: dict[str, float] = {}

    def start(self) -> None:
        self.t0, self.cpu0 = time.monotonic(), self._now()

    def cores(self) -> dict[str, float]:
        wall, cpu1 = time.monotonic() - self.t0, self._now()
        return {f"{g}_cpu_cores": (cpu1[g] - self.cpu0[g]) / wall for g in self.groups}

    def _now(self) -> dict[str, float]:
        return {g: cpu_of(pids) if g != "nats" else cpu_seconds(pids[0])
                for g, pids in self.groups.items()}  # fmt: skip


async def _wait_leading(nc: Any, names: list[str], timeout: float = 60) -> None:
    """The scheduler leads and has loaded these schedules (it publishes their names)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:  # the scheduler creates the bucket
            kv = await nc.jetstream().key_value(SCHEDULES_BUCKET)
            entry = await kv.get(YAML_NAMES_KEY)
            if json.loads(entry.value or b"null") == sorted(names):
                return
        except Exception:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("the scheduler did not take the lead")


async def _start(
    url: str, tmp: Path, nc: Any, schedules: dict[str, str]
) -> tuple[BenchDaemon, CpuMeter]:
    """A daemon with one worker and the scheduler (default lease: a new leader fires
    its first tick one `renew_every`, 5 s, after winning)."""
    daemon = BenchDaemon(url, tmp, queue=QUEUE, schedules=schedules).start()
    try:
        await daemon.ready()
        await _wait_leading(nc, list(schedules))
        roles = await child_roles(nc, daemon.child_pids())
    except BaseException:
        daemon.stop()
        raise
    return daemon, CpuMeter(daemon, roles, nats_server_pid(url))


async def _delayed_batch(nc: Any, url: str, run: int, n: int) -> dict[str, Any]:
    """`n` delayed jobs due on one whole second a few seconds ahead: how late each
    starts. They start in turn, so p50/p99 include the worker's throughput; `min` is
    the first, the timing itself."""
    records = await Records().subscribe(nc, f"late{run}.*")
    due = math.ceil(time.time()) + DUE_AHEAD
    at = datetime.fromtimestamp(due, UTC)
    await fill_delayed(nc, url, n, at, queue=QUEUE, id_prefix=f"late{run}.")
    await records.wait(n, timeout=DUE_AHEAD + 30)
    await records.close()
    late = [((r.started_at or 0) - due) * 1000 for r in records.items.values()]
    return {"delayed_late_ms": percentiles_ms(late), "delayed_fired": len(late) / n}


async def idle_and_delayed(
    url: str, tmp: Path, runs: int, n_pending: int, n_schedules: int, n_batch: int, window: float
) -> dict[str, list[dict[str, Any]]]:
    """`n_pending` delayed jobs held an hour ahead. Daemon 1 (no schedules), per run:
    CPU over an idle window, then a delayed batch's lateness. Daemon 2 (the schedules,
    due half a day ahead), per run: CPU over an idle window."""
    nc = await nats.connect(url)
    out: dict[str, list[dict[str, Any]]] = {"delayed": [], "schedules": []}
    try:
        far = datetime.now(UTC) + timedelta(hours=1)
        await fill_delayed(nc, url, n_pending, far, queue=QUEUE, id_prefix="pending.")
        daemon, meter = await _start(url, tmp, nc, {})
        try:
            for run in range(runs):
                meter.start()
                await asyncio.sleep(window)
                out["delayed"].append(
                    {**meter.cores(), **await _delayed_batch(nc, url, run, n_batch)}
                )
        finally:
            daemon.stop()
        hour = (datetime.now(UTC).hour + 12) % 24
        daily = {f"daily-{i}": f"{i % 60} {i // 60 % 60} {hour} * * *" for i in range(n_schedules)}
        daemon, meter = await _start(url, tmp, nc, daily)
        try:
            await asyncio.sleep(1.0)  # the leader's first passes over the schedules
            for _ in range(runs):
                meter.start()
                await asyncio.sleep(window)
                out["schedules"].append(meter.cores())
        finally:
            daemon.stop()
    finally:
        await nc.jetstream().purge_stream(JOBS_STREAM)
        await nc.close()
    return out


async def cron_every_second(
    url: str, tmp: Path, runs: int, n_schedules: int, window: float
) -> list[dict[str, Any]]:
    """Per run: the lateness of every tick in a window, and CPU over it."""
    nc = await nats.connect(url)
    schedules = {f"every-{i}": "* * * * * *" for i in range(n_schedules)}
    records = await Records().subscribe(nc, "cron.>")
    daemon, meter = await _start(url, tmp, nc, schedules)
    windows = []
    try:
        await records.wait(1, timeout=30)
        await asyncio.sleep(2.0)  # past the first ticks of a fresh leader
        for _ in range(runs):
            meter.start()
            t0 = time.time()
            await asyncio.sleep(window)
            windows.append((math.ceil(t0), math.floor(time.time()), meter.cores()))
        await asyncio.sleep(3.0)  # the last ticks' records
    finally:
        daemon.stop()
        await records.close()
        await nc.jetstream().purge_stream(JOBS_STREAM)
        await nc.close()
    by_tick: dict[int, list[ResultRecord]] = {}
    for rec in records.items.values():
        if not rec.id.startswith("cron.every-"):
            continue
        tick = int(parse_stamp(rec.id.split(".", 2)[2]).timestamp())
        by_tick.setdefault(tick, []).append(rec)
    out = []
    for first, last, cores in windows:
        fire, start = [], []
        for tick in range(first, last):
            for rec in by_tick.get(tick, ()):
                fire.append((rec.enqueued_at - tick) * 1000)
                start.append(((rec.started_at or 0) - tick) * 1000)
        expected = n_schedules * (last - first)
        out.append({
            **cores,
            "cron_fire_late_ms": percentiles_ms(fire),
            "cron_start_late_ms": percentiles_ms(start),
            "cron_fired": len(start) / expected if expected else 0.0,
        })  # fmt: skip
    return out
