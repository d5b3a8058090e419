"""Pools against one process per queue (issue 21): the memory of 3 and of 10 queues
served either way, and drain throughput of one queue alone and of three queues under
load, at concurrency 10 per queue (the default config's order of magnitude).

Memory is the RSS of the worker processes (`worker`) and of naqd's whole process tree
(`tree`: supervisor, workers, the multiprocessing resource tracker; no scheduler, no
nats-server), after each queue has run `N_WARM` jobs, so task code and every code path
a job takes are loaded, as in a serving daemon.

Run alone: `python -m bench.pools` (BENCH_RUNS and BENCH_SCALE apply); in `make bench`
it is the `pools` section.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.daemon import BenchDaemon, StreamWatch
from bench.drain import time_drain, wait_empty
from bench.fill import fill
from bench.procstat import children, rss_mb
from naqd.protocol.names import JOBS_STREAM

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
N_WARM = max(50, int(500 * SCALE))  # jobs per queue before memory is read
N_DRAIN = int(30000 * SCALE)  # jobs per drain (split over the loaded queues)
DRAIN_CAP = 4.0  # s: a drain row stops here if N is not done
CONCURRENCY = 10
TASK = "bench.tasks:anoop"
QUEUE_NAMES = tuple(f"q{i}" for i in range(10))


def _median(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def _warm(url: str, queues: tuple[str, ...]) -> None:
    watch = await StreamWatch.open(url)
    try:
        for queue in queues:
            await fill(watch.nc, url, N_WARM, queue=queue, task=TASK)
        await wait_empty(watch, timeout=300)
    finally:
        await watch.close()


def memory_once(url: str, tmp: Path, n: int, pool: bool) -> dict[str, float]:
    queues = QUEUE_NAMES[:n]
    daemon = BenchDaemon(url, tmp, concurrency=CONCURRENCY, queues=queues, pool=pool)
    with daemon:
        asyncio.run(_warm(url, queues))
        workers = daemon.child_pids()
        tree = [daemon.pid, *children(daemon.pid)]
        return {
            "processes": float(len(workers)),
            "worker_mb": sum(rss_mb(p) for p in workers),
            "tree_mb": sum(rss_mb(p) for p in tree),
        }


async def _drain(
    url: str, tmp: Path, queues: tuple[str, ...], loaded: tuple[str, ...], pool: bool
) -> dict[str, float]:
    """`N_DRAIN` jobs spread over the `loaded` queues, drained by a fresh daemon serving
    `queues` (one process each, or one pool)."""
    watch = await StreamWatch.open(url)
    try:
        each = N_DRAIN // len(loaded)
        for queue in loaded:
            await fill(watch.nc, url, each, queue=queue, task=TASK, result_ttl=0)
        total = await watch.jobs()
        daemon = BenchDaemon(url, tmp, concurrency=CONCURRENCY, queues=queues, pool=pool)
        daemon.start()
        try:
            t = await time_drain(watch, daemon, total, total, max_seconds=DRAIN_CAP)
            return {"rate": t.rate, "naqd_cpu": t.naqd_cpu, "nats_cpu": t.nats_cpu}
        finally:
            daemon.stop()
            await watch.js.purge_stream(JOBS_STREAM)
    finally:
        await watch.close()


THREE = QUEUE_NAMES[:3]
# label -> (queues served, queues loaded, pool)
DRAINS: dict[str, tuple[tuple[str, ...], tuple[str, ...], bool]] = {
    "1 queue, its own process": (THREE[:1], THREE[:1], False),
    "1 queue loaded, in a pool of 3": (THREE, THREE[:1], True),
    "3 queues loaded, one process each": (THREE, THREE, False),
    "3 queues loaded, one pool of 3 (1 process)": (THREE, THREE, True),
}


def run_pools(url: str, tmp: Path, runs: int = RUNS) -> dict[str, Any]:
    out: dict[str, Any] = {"memory": {}, "drain": {}, "concurrency": CONCURRENCY}
    for n in (3, 10):
        for pool in (False, True):
            label = f"{n} queues, {'one pool' if pool else 'one process per queue'}"
            samples = [memory_once(url, tmp, n, pool) for _ in range(runs)]
            out["memory"][label] = {k: _median([s[k] for s in samples]) for k in samples[0]}
            print(f"  memory {label} done", flush=True)
    for label, (queues, loaded, pool) in DRAINS.items():
        samples = [asyncio.run(_drain(url, tmp, queues, loaded, pool)) for _ in range(runs)]
        out["drain"][label] = {k: _median([s[k] for s in samples]) for k in samples[0]}
        print(f"  drain {label} done", flush=True)
    return out


def print_pools(p: dict[str, Any]) -> None:
    print("\n### Pools: memory after warm-up (RSS, MB)\n")
    print("| queues served as | worker processes | workers' RSS | naqd's tree RSS |")
    print("|---|---|---|---|")
    for label, m in p["memory"].items():
        w, t = m["worker_mb"], m["tree_mb"]
        print(
            f"| {label} | {m['processes']['median']:.0f} | {w['median']:.0f} MB "
            f"({w['min']:.0f}..{w['max']:.0f}) | {t['median']:.0f} MB "
            f"({t['min']:.0f}..{t['max']:.0f}) |"
        )
    print(f"\n### Pools: drain, concurrency {p['concurrency']} per queue, fire-and-forget\n")
    print("| drain | jobs/s | min..max | naqd CPU | nats-server CPU |")
    print("|---|---|---|---|---|")
    for label, d in p["drain"].items():
        r = d["rate"]
        print(
            f"| {label} | {r['median'] / 1000:.1f}k/s | {r['min'] / 1000:.1f}k.."
            f"{r['max'] / 1000:.1f}k | {d['naqd_cpu']['median'] * 100:.0f}% | "
            f"{d['nats_cpu']['median'] * 100:.0f}% |"
        )


def main() -> None:
    from tests.natsserver import NatsServer

    with tempfile.TemporaryDirectory(prefix="naqd-bench-pools-") as tmp_s:
        tmp = Path(tmp_s)
        server = NatsServer(tmp / "nats").start()
        try:
            print(f"nats-server {server.url}; {RUNS} runs per figure; scale {SCALE}", flush=True)
            print_pools(run_pools(server.url, tmp))
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
