"""`make bench`: naqd's throughput, latency, CPU and memory next to raw nats-py baselines
on the same nats-server, each figure the median of BENCH_RUNS runs (default 3) with
min and max. Ratios to the raw figures, not absolute numbers, compare across machines.

BENCH_SCALE=0.1 BENCH_RUNS=1 makes a quick smoke run (job counts scale; timing windows
do not).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from bench import console, pools, raw, scale
from bench.daemon import BenchDaemon, StreamWatch
from bench.drain import deep_drain, drain, fill_deep, purge, shallow_drain, wait_empty
from bench.fill import fill
from bench.procstat import rss_mb
from bench.table import print_table
from naqd import Client
from naqd.protocol.names import JOBS_STREAM
from tests.natsserver import NatsServer

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
N_AWAITED = int(3000 * SCALE)
N_BULK = int(30000 * SCALE)
N_DRAIN = int(60000 * SCALE)  # >= 2 s at 30k jobs/s
DRAIN_CAP = 4.0  # s: a drain row stops here if N is not done (a slow build)
N_LATENCY = max(50, int(500 * min(1.0, SCALE * 2)))
N_MEMORY = int(500_000 * SCALE)  # RSS must stay flat over this many jobs
N_SHALLOW = 1000
N_DEEP = int(1_000_000 * SCALE)
N_DEEP_SAMPLE = max(2 * N_SHALLOW, int(20_000 * SCALE))
N_PENDING = int(100_000 * SCALE)
N_SCHEDULES = max(10, int(1000 * SCALE))
N_DELAYED_BATCH = max(100, int(1000 * SCALE))
IDLE_WINDOW = 4.0  # s of CPU per idle sample (clock ticks are 10 ms)
CRON_WINDOW = 3.0  # s of ticks per cron sample

ASYNC, SYNC = "bench.tasks:anoop", "bench.tasks:noop"
# label, processes, concurrency, task, result_ttl. The targets of issue 15 (bench/table.py)
# hold for one worker process at concurrency 10 and 256, async and sync tasks.
DRAINS = (
    *(
        (f"1 process, c{c}, {kind}, {what}", 1, c, task, ttl)
        for c in (256, 10)
        for kind, task in (("async", ASYNC), ("sync", SYNC))
        for what, ttl in (("results stored", None), ("fire-and-forget", 0))
    ),
    ("2 processes, c256, async, results stored", 2, 256, ASYNC, None),
    ("2 processes, c256, async, fire-and-forget", 2, 256, ASYNC, 0),
)


STARTED = time.monotonic()


def progress(what: str) -> None:
    print(f"[{time.monotonic() - STARTED:3.0f} s] {what} done", flush=True)


def summarize(values: list[Any]) -> Any:
    """Median, min and max of each figure over the runs (dicts of figures recursively)."""
    if isinstance(values[0], dict):
        return {k: summarize([v[k] for v in values]) for k in values[0]}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def repeat(fn: Callable[[], Any]) -> Any:
    return summarize([fn() for _ in range(RUNS)])


def percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"p50": s[len(s) // 2], "p99": s[min(len(s) - 1, int(len(s) * 0.99))], "max": s[-1]}


async def naqd_enqueue_awaited(url: str, n: int) -> float:
    async with Client(url) as client:
        await client.declare_queue("enq")  # no daemon serves it: a real app's queue is known
        t0 = time.perf_counter()
        for _ in range(n):
            await client.enqueue(SYNC, queue="enq")
        rate = n / (time.perf_counter() - t0)
    await purge(url)
    return rate


async def naqd_enqueue_bulk(url: str, n: int) -> float:
    async with Client(url) as client:
        await client.declare_queue("enq")  # no daemon serves it: a real app's queue is known
        t0 = time.perf_counter()
        await client.enqueue_many(SYNC, [()] * n, queue="enq")
        rate = n / (time.perf_counter() - t0)
    await purge(url)
    return rate


async def latency(url: str, n: int) -> dict[str, dict[str, float]]:
    to_start, to_result = [], []
    async with Client(url) as client:
        for _ in range(n):
            t0 = time.time()
            job = await client.enqueue(ASYNC, queue="bench")
            rec = await client.wait(job.id, timeout=10)
            to_result.append((time.time() - t0) * 1000)
            to_start.append(((rec.started_at or 0) - rec.enqueued_at) * 1000)
    return {
        "enqueue_to_start_ms": percentiles(to_start),
        "enqueue_to_result_ms": percentiles(to_result),
    }


def enqueue_and_latency(url: str, tmp: Path, results: dict[str, Any]) -> None:
    run = asyncio.run
    with BenchDaemon(url, tmp) as d:
        results["enqueue_per_s"] = {
            "awaited": repeat(lambda: run(naqd_enqueue_awaited(url, N_AWAITED))),
            "bulk": repeat(lambda: run(naqd_enqueue_bulk(url, N_BULK))),
        }
        progress("enqueue")
        results["latency"] = repeat(lambda: run(latency(url, N_LATENCY)))
        progress("latency")
        results["memory_mb"] = {
            "supervisor_idle": rss_mb(d.pid),
            "worker_idle": rss_mb(d.child_pids()[0]),
        }


def drains(url: str, tmp: Path, results: dict[str, Any]) -> None:
    def once(procs: int, conc: int, task: str, ttl: float | None) -> dict[str, Any]:
        timing = drain(url, tmp, procs, N_DRAIN, task, ttl, DRAIN_CAP, conc)
        return asdict(asyncio.run(timing))

    out = {}
    for label, procs, conc, task, ttl in DRAINS:
        out[label] = repeat(partial(once, procs, conc, task, ttl))
        out[label].pop("marks")
        progress(f"drain {label}")
    results["drain"] = out


def depth(url: str, tmp: Path, results: dict[str, Any]) -> None:
    """The same drain on a short and on a deep queue: per-job cost must not grow with
    depth. The deep queue is filled once; each run takes its first N_DEEP_SAMPLE jobs."""
    run = asyncio.run
    shallow = repeat(lambda: asdict(run(shallow_drain(url, tmp, N_SHALLOW, ASYNC))))
    run(fill_deep(url, N_DEEP, ASYNC))
    deep = [asdict(run(deep_drain(url, tmp, N_DEEP_SAMPLE, N_SHALLOW))) for _ in range(RUNS)]
    run(purge(url))
    for d in deep:
        d[f"first_{N_SHALLOW}_rate"] = d.pop("marks")[N_SHALLOW]
    shallow.pop("marks")
    results["depth"] = {
        "shallow_jobs": N_SHALLOW,
        "deep_jobs": N_DEEP,
        "deep_sample_jobs": N_DEEP_SAMPLE,
        "shallow": shallow,
        "deep": summarize(deep),
    }
    progress("depth")


def memory(url: str, tmp: Path, results: dict[str, Any]) -> None:
    """A worker's RSS before any job, after a warm-up of N_MEMORY / 5 jobs (its metrics
    series, pools and arenas are then in place) and after N_MEMORY jobs in all: flat
    means the last two agree."""
    with BenchDaemon(url, tmp, queue="mem") as d:
        worker = d.child_pids()[0]
        before = rss_mb(worker)

        async def jobs(n: int) -> None:
            watch = await StreamWatch.open(url)
            try:
                await fill(watch.nc, url, n, queue="mem", task=ASYNC)
                await wait_empty(watch, timeout=600)
            finally:
                await watch.close()

        warm = N_MEMORY // 5
        asyncio.run(jobs(warm))
        warmed = rss_mb(worker)
        asyncio.run(jobs(N_MEMORY - warm))
        results.setdefault("memory_mb", {}).update({
            "worker_before": before,
            f"worker_after_{warm}_jobs": warmed,
            f"worker_after_{N_MEMORY}_jobs": rss_mb(worker),
        })  # fmt: skip
    progress("memory")


def delayed_and_cron(url: str, tmp: Path, results: dict[str, Any]) -> None:
    idle = asyncio.run(
        scale.idle_and_delayed(url, tmp, RUNS, N_PENDING, N_SCHEDULES, N_DELAYED_BATCH, IDLE_WINDOW)
    )
    cron = asyncio.run(scale.cron_every_second(url, tmp, RUNS, N_SCHEDULES, CRON_WINDOW))
    results["scheduling"] = {
        "pending_delayed": N_PENDING,
        "schedules": N_SCHEDULES,
        "delayed_batch": N_DELAYED_BATCH,
        "idle_with_delayed": summarize(idle["delayed"]),
        "idle_with_schedules": summarize(idle["schedules"]),
        "cron_every_second": summarize(cron),
    }
    progress("delayed/cron")


def durability(url: str, tmp: Path, results: dict[str, Any]) -> None:
    """Durable (sync always) beside non-durable, on two servers of its own."""
    from bench import durable

    results["durable"] = durable.measure(tmp)
    progress("durable vs non-durable")


def pooled(url: str, tmp: Path, results: dict[str, Any]) -> None:
    """Several queues per worker process against one process per queue (bench/pools.py)."""
    results["pools"] = pools.run_pools(url, tmp, RUNS)
    progress("pools")


def ratios(r: dict[str, Any]) -> dict[str, float]:
    def of(a: dict[str, float], b: dict[str, float]) -> float:
        return a["median"] / b["median"] if b["median"] else 0.0

    base = r["baseline_per_s"]
    out = {}
    if "enqueue_per_s" in r:
        enq = r["enqueue_per_s"]
        out["enqueue_awaited_vs_raw"] = of(enq["awaited"], base["raw_awaited_publish"])
        out["enqueue_bulk_vs_raw_pipelined"] = of(enq["bulk"], base["raw_pipelined_publish"])
    drained = r.get("drain", {})
    for label, d in drained.items():
        out[f"drain {label} vs raw pull+ack"] = of(d["rate"], base["raw_pull_ack"])
        if "stored" in label:
            out[f"drain {label} vs raw pull+store+ack"] = of(d["rate"], base["raw_pull_store_ack"])
        one = label.replace("2 processes", "1 process")
        if label.startswith("2 ") and one in drained:
            out[f"drain {label} vs 1 process"] = of(d["rate"], drained[one]["rate"])
    if "depth" in r:
        dep = r["depth"]
        out["depth: deep first-sample rate vs shallow"] = of(
            dep["deep"]["rate"], dep["shallow"]["rate"]
        )
    return out


def main() -> None:
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "platform": platform.platform()},
        "runs": RUNS,
        "scale": SCALE,
    }  # fmt: skip
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="naqd-bench-") as tmp_s:
        tmp = Path(tmp_s)
        server = NatsServer(tmp / "nats").start()
        url = server.url
        try:
            print(f"nats-server {url}; {RUNS} runs per figure; scale {SCALE}", flush=True)
            run = asyncio.run
            results["baseline_per_s"] = {
                "raw_awaited_publish": repeat(lambda: run(raw.awaited_publish(url, N_AWAITED))),
                "raw_pipelined_publish": repeat(lambda: run(raw.pipelined_publish(url, N_BULK))),
                # uvloop, as naqd's workers use it.
                # The raw loop of issue 21: fetches 100 at a time, acks each message.
                "raw_pull_ack": repeat(
                    lambda: run_uvloop(raw.pull_ack_loop(url, N_DRAIN, batch=100))
                ),
                "raw_pull_store_ack": repeat(
                    lambda: run_uvloop(raw.pull_store_ack_loop(url, N_DRAIN))
                ),
            }
            results["baseline_per_s"]["raw_enqueue_to_start_ms"] = repeat(
                lambda: run_uvloop(raw.enqueue_to_start(url, N_LATENCY))
            )
            progress("baselines")
            for name, section in SECTIONS.items():
                if name in ONLY:
                    section(url, tmp, results)
            left = run(_jobs_left(url))
            assert left == 0, f"{left} jobs left in {JOBS_STREAM}"
        finally:
            server.stop()
    results["ratios"] = ratios(results)
    results["seconds"] = time.monotonic() - started
    out = Path(__file__).parent / "results.json"
    out.write_text(json.dumps(results, indent=2))
    print_table(results)
    if "durable" in results:
        from bench import durable

        print("\n### Durable vs non-durable (same run)\n")
        print(durable.table(results["durable"]))
    if "pools" in results:
        pools.print_pools(results["pools"])
    print(f"\nJSON: {out}; {results['seconds']:.0f} s")


def run_uvloop(coro: Any) -> Any:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


SECTIONS: dict[str, Callable[[str, Path, dict[str, Any]], None]] = {
    "enqueue": enqueue_and_latency,
    "drain": drains,
    "depth": depth,
    "memory": memory,
    "scheduling": delayed_and_cron,
    "durable": durability,
    "console": console.section,
    "pools": pooled,
}
# BENCH_ONLY=drain,depth runs those sections (after the baselines); default: all.
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", ",".join(SECTIONS)).split(",")))


async def _jobs_left(url: str) -> int:
    watch = await StreamWatch.open(url)
    try:
        return await watch.jobs()
    finally:
        await watch.close()


if __name__ == "__main__":
    main()
