"""`make bench`: naqd's throughput, latency, CPU and memory next to raw nats-py baselines
on the same nats-server, each figure the median of 3 runs (min..max). Ratios to the raw
figures, not absolute numbers, are what compare across machines.

BENCH_SCALE=0.2 makes a quick smoke run; BENCH_RUNS sets the repetitions (default 3).
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
from pathlib import Path

from bench import raw
from bench.daemon import BenchDaemon, drain, fill, jobs_in_stream
from bench.procstat import rss_mb
from naqd import Client
from tests.natsserver import NatsServer

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
N_AWAITED = int(3000 * SCALE)
N_BULK = int(30000 * SCALE)
N_DRAIN = int(40000 * SCALE)
N_LATENCY = int(500 * min(1.0, SCALE * 2))
N_MEMORY = int(100_000 * SCALE)


def summarize(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def repeat(fn: Callable[[], float]) -> dict[str, float]:
    return summarize([fn() for _ in range(RUNS)])


def percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "p50": s[len(s) // 2],
        "p99": s[min(len(s) - 1, int(len(s) * 0.99))],
        "max": s[-1],
    }


async def naqd_enqueue_awaited(url: str, n: int) -> float:
    async with Client(url) as client:
        t0 = time.perf_counter()
        for _ in range(n):
            await client.enqueue("bench.tasks:noop", queue="enq")
        rate = n / (time.perf_counter() - t0)
    await _purge(url)
    return rate


async def naqd_enqueue_bulk(url: str, n: int) -> float:
    async with Client(url) as client:
        t0 = time.perf_counter()
        await client.enqueue_many("bench.tasks:noop", [()] * n, queue="enq")
        rate = n / (time.perf_counter() - t0)
    await _purge(url)
    return rate


async def _purge(url: str) -> None:
    import nats

    nc = await nats.connect(url)
    await nc.jetstream().purge_stream("NAQD_JOBS")
    await nc.close()


async def latency(url: str, n: int) -> dict[str, dict[str, float]]:
    to_start, to_result = [], []
    async with Client(url) as client:
        for _ in range(n):
            t0 = time.time()
            job = await client.enqueue("bench.tasks:anoop", queue="bench")
            rec = await client.wait(job.id, timeout=10)
            to_result.append((time.time() - t0) * 1000)
            to_start.append((rec.started_at - rec.enqueued_at) * 1000)
    return {
        "enqueue_to_start_ms": percentiles(to_start),
        "enqueue_to_result_ms": percentiles(to_result),
    }


def ratio(a: dict[str, float], b: dict[str, float]) -> float:
    return a["median"] / b["median"] if b["median"] else 0.0


def main() -> None:
    results: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "platform": platform.platform()},
        "runs": RUNS,
        "scale": SCALE,
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="naqd-bench-") as tmp_s:
        tmp = Path(tmp_s)
        server = NatsServer(tmp / "nats").start()
        url = server.url
        try:
            run = asyncio.run
            print(f"nats-server {url}; {RUNS} runs per figure; scale {SCALE}", flush=True)
            base = {
                "raw_awaited_publish": repeat(lambda: run(raw.awaited_publish(url, N_AWAITED))),
                "raw_pipelined_publish": repeat(lambda: run(raw.pipelined_publish(url, N_BULK))),
                "raw_pull_ack": repeat(lambda: run(raw.pull_ack_loop(url, N_DRAIN))),
            }
            results["baseline_per_s"] = base
            print("baselines done", flush=True)
            with BenchDaemon(url, tmp, processes=1, concurrency=256) as d:
                enq = {
                    "awaited": repeat(lambda: run(naqd_enqueue_awaited(url, N_AWAITED))),
                    "bulk": repeat(lambda: run(naqd_enqueue_bulk(url, N_BULK))),
                }
                results["enqueue_per_s"] = enq
                print("enqueue done", flush=True)
                results["latency"] = run(latency(url, N_LATENCY))
                print("latency done", flush=True)
                idle_rss = {"supervisor_mb": rss_mb(d.pid), "worker_mb": rss_mb(d.worker_pids()[0])}
            drains: dict[str, object] = {}
            for label, procs, ttl in (
                ("1 process, results stored", 1, None),
                ("1 process, fire-and-forget", 1, 0),
                ("2 processes, results stored", 2, None),
            ):
                samples = [drain(url, tmp, procs, N_DRAIN, ttl) for _ in range(RUNS)]
                drains[label] = {
                    "jobs_per_s": summarize([s["rate"] for s in samples]),
                    "naqd_cpu_cores": summarize([s["naqd_cpu"] for s in samples]),
                    "nats_cpu_cores": summarize([s["nats_cpu"] for s in samples]),
                }
                print(f"drain {label} done", flush=True)
            results["drain"] = drains
            with BenchDaemon(url, tmp, processes=1, concurrency=256, queue="mem") as d:
                worker = d.worker_pids()[0]
                before = rss_mb(worker)
                run(fill(url, N_MEMORY, 0, queue="mem"))
                d.wait_empty(timeout=600)
                results["memory_mb"] = {
                    "supervisor_idle": idle_rss["supervisor_mb"],
                    "worker_idle": idle_rss["worker_mb"],
                    "worker_before": before,
                    f"worker_after_{N_MEMORY}_jobs": rss_mb(worker),
                }
            assert run(jobs_in_stream(url)) == 0
        finally:
            server.stop()
    results["ratios"] = {
        "enqueue_awaited_vs_raw": ratio(enq["awaited"], base["raw_awaited_publish"]),
        "enqueue_bulk_vs_raw_pipelined": ratio(enq["bulk"], base["raw_pipelined_publish"]),
        "drain_stored_vs_raw_pull_ack": ratio(
            drains["1 process, results stored"]["jobs_per_s"],
            base["raw_pull_ack"],  # type: ignore[index]
        ),
        "drain_fire_and_forget_vs_raw_pull_ack": ratio(
            drains["1 process, fire-and-forget"]["jobs_per_s"],
            base["raw_pull_ack"],  # type: ignore[index]
        ),
    }
    out = Path(__file__).parent / "results.json"
    out.write_text(json.dumps(results, indent=2))
    print_table(results)
    print(f"\nJSON: {out}")


def print_table(r: dict) -> None:
    def fmt(d: dict[str, float], unit: str = "/s") -> str:
        return f"{d['median']:>10,.0f}{unit}  ({d['min']:,.0f}..{d['max']:,.0f})"

    print("\n== naqd benchmark (median of runs, min..max) ==")
    b = r["baseline_per_s"]
    print(f"raw awaited publish      {fmt(b['raw_awaited_publish'])}")
    print(f"raw pipelined publish    {fmt(b['raw_pipelined_publish'])}")
    print(f"raw pull+ack loop        {fmt(b['raw_pull_ack'])}")
    e = r["enqueue_per_s"]
    print(f"naqd enqueue awaited     {fmt(e['awaited'])}")
    print(f"naqd enqueue bulk        {fmt(e['bulk'])}")
    for label, d in r["drain"].items():
        naqd_cpu, nats_cpu = d["naqd_cpu_cores"]["median"], d["nats_cpu_cores"]["median"]
        cpu = f"cpu naqd {naqd_cpu:.2f} / nats {nats_cpu:.2f} cores"
        print(f"drain {label:<28} {fmt(d['jobs_per_s'])}  {cpu}")
    for k, v in r["latency"].items():
        print(f"latency {k:<22} p50 {v['p50']:.2f}  p99 {v['p99']:.2f}  max {v['max']:.2f} ms")
    for k, v in r["memory_mb"].items():
        print(f"memory {k:<28} {v:.1f} MB")
    for k, v in r["ratios"].items():
        print(f"ratio {k:<38} {v:.2f}")
    print("delayed/cron scale: not measured yet (scheduler not in this build)")


if __name__ == "__main__":
    main()
