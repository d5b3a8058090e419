"""Drain timing: fill a queue while no daemon runs, start naqd, and time from the first
job consumed to the stream being empty (or `consume` jobs gone), with the CPU of naqd's
process tree and of nats-server over the same window.

Why no consumer may wait while the queue fills: nats-server 2.15 delivers only about
5k msgs/s to a pull request that waited across a consumer pause/resume, until that
request expires (reproduced with a raw nats-py loop), so a "pause, fill, resume" bench
times the server's throttle, not naqd. Starting the daemon on a full queue has no such
waiting request; the clock starts at the first job gone, so start-up is not timed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.daemon import BenchDaemon, StreamWatch, child_roles, cpu_of, nats_server_pid
from bench.fill import fill
from bench.procstat import cpu_seconds
from naqd.protocol.names import JOBS_STREAM
from tests.natsserver import wait_until


@dataclass
class DrainTiming:
    rate: float  # jobs/s from the first job gone to the end
    naqd_cpu: float  # cores: CPU seconds of naqd's process tree / wall seconds
    nats_cpu: float
    marks: dict[int, float] = field(default_factory=dict)  # jobs gone -> jobs/s up to then


async def time_drain(
    watch: StreamWatch,
    daemon: BenchDaemon,
    total: int,
    consume: int,
    *,
    poll: float = 0.01,
    fast_until: int = 0,
    max_seconds: float | None = None,
    timeout: float = 600,
) -> DrainTiming:
    """Poll the stream until `consume` of its `total` jobs are gone, or `max_seconds`
    after the first one went (a slow build still gets a steady-state figure without
    making the bench take ages). Polls every millisecond until `fast_until` jobs are
    gone (short spans need the resolution), then every `poll` s. Jobs are counted from
    the first poll that sees one gone."""
    server = nats_server_pid(watch.nc.connected_url.geturl())
    wait_until(lambda: len(daemon.child_pids()) >= daemon.workers, 30, what="naqd workers")
    pids = daemon.tree_pids()
    marks: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while (left := await watch.jobs()) >= total:
        if time.monotonic() > deadline:
            raise AssertionError(f"naqd consumed nothing within {timeout}s")
        await asyncio.sleep(0.001)
    if daemon.workers > 1:
        # Worker processes boot side by side, but the first one to serve drains at full
        # speed while the others still start: time from the moment all of them serve
        # (each puts its heartbeat key then), or the rate is that of one process.
        n = daemon.workers
        wait_until(lambda: len(daemon.child_pids()) >= n, 30, what="naqd workers")
        roles = await child_roles(watch.nc, daemon.child_pids(), timeout=30)
        assert len(roles) >= n, f"only {len(roles)} of {n} naqd workers serve"
        pids = daemon.tree_pids()
        left = await watch.jobs()
    t_first, at_first = time.monotonic(), left
    cpu0, ncpu0 = cpu_of(pids), cpu_seconds(server)
    stop_at = t_first + max_seconds if max_seconds else float("inf")
    while total - left < consume and time.monotonic() < stop_at:
        gone = at_first - left
        await asyncio.sleep(0.001 if gone < fast_until else poll)
        left = await watch.jobs()
        if fast_until and total - left >= fast_until and fast_until not in marks:
            marks[fast_until] = (at_first - left) / (time.monotonic() - t_first)
        if time.monotonic() > deadline:
            raise AssertionError(f"drain not done within {timeout}s ({left} jobs left)")
    t_end = time.monotonic()
    cpu1, ncpu1 = cpu_of(pids), cpu_seconds(server)
    wall = t_end - t_first
    return DrainTiming(
        (at_first - left) / wall, (cpu1 - cpu0) / wall, (ncpu1 - ncpu0) / wall, marks
    )


async def drain(
    url: str,
    tmp: Path,
    processes: int,
    n: int,
    task: str,
    result_ttl: float | None,
    max_seconds: float | None = None,
    concurrency: int = 256,
    settings: dict[str, Any] | None = None,
) -> DrainTiming:
    """`n` queued no-op jobs drained by a fresh daemon with `processes` workers of
    `concurrency` slots each (up to `max_seconds`; what is left then is purged)."""
    watch = await StreamWatch.open(url)
    try:
        await fill(watch.nc, url, n, task=task, result_ttl=result_ttl)
        queued = await watch.jobs()
        assert queued == n, f"the jobs stream holds {queued} messages, expected {n}"
        daemon = BenchDaemon(
            url, tmp, processes=processes, concurrency=concurrency, settings=settings
        ).start()
        try:
            return await time_drain(watch, daemon, n, n, max_seconds=max_seconds)
        finally:
            daemon.stop()
            await watch.js.purge_stream(JOBS_STREAM)
    finally:
        await watch.close()


async def shallow_drain(url: str, tmp: Path, n: int, task: str) -> DrainTiming:
    """A short queue (`n` jobs) drained by a fresh daemon, timed at 1 ms resolution."""
    watch = await StreamWatch.open(url)
    try:
        await fill(watch.nc, url, n, task=task)
        daemon = BenchDaemon(url, tmp).start()
        try:
            return await time_drain(watch, daemon, n, n, fast_until=n)
        finally:
            daemon.stop()
    finally:
        await watch.close()


async def fill_deep(url: str, n: int, task: str) -> None:
    watch = await StreamWatch.open(url)
    try:
        await fill(watch.nc, url, n, task=task)
    finally:
        await watch.close()


async def deep_drain(url: str, tmp: Path, consume: int, first: int) -> DrainTiming:
    """A fresh daemon on the deep queue: the rate of its first `first` jobs (a mark) and
    of its first `consume`; it stops there, leaving the rest for the next run."""
    watch = await StreamWatch.open(url)
    try:
        total = await watch.jobs()
        daemon = BenchDaemon(url, tmp).start()
        try:
            return await time_drain(watch, daemon, total, consume, fast_until=first)
        finally:
            daemon.stop()
    finally:
        await watch.close()


async def wait_empty(watch: StreamWatch, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while await watch.jobs():
        if time.monotonic() > deadline:
            raise AssertionError(f"the jobs stream is not empty after {timeout}s")
        await asyncio.sleep(0.05)


async def purge(url: str) -> None:
    watch = await StreamWatch.open(url)
    try:
        await watch.js.purge_stream(JOBS_STREAM)
    finally:
        await watch.close()
