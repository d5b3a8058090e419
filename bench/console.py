"""`python -m bench.console`: the console's reads on big queues (issue 19, part 8).

Fills one server with 100,000 queued jobs, 10,000 dead letters and 10,000 finished
results (BENCH_SCALE scales the counts), then times each read the console makes, the
median of RUNS tries: the overview, a page of 50 dead letters (all, and of one queue),
a job's detail (dead, finished, queued near the front), an id search (exact, and an
8-character prefix), a page of queued jobs and of finished ones, and the argument
search (time to its first hit, and to the end of a full scan). Target: each read
within 300 ms; the argument search streams. `make bench` runs it as its `console`
section (BENCH_ONLY=console for just this one)."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from naqd import Client
from naqd.models import Config, NatsConfig
from naqd.protocol.deadletter import DeadLetter, encode_dead_letter
from naqd.protocol.envelope import ErrorInfo, ResultRecord, encode_result
from naqd.protocol.names import HDR_MSG_ID, dlq_subject, result_subject
from naqd.protocol.resources import ensure_resources

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
N_QUEUED = int(100_000 * SCALE)
N_DEAD = int(10_000 * SCALE)
N_RESULTS = int(10_000 * SCALE)
RUNS = 5
TARGET_MS = 300.0
TRACEBACK = "Traceback (most recent call last):\n" + '  File "app.py", line 1, in f\n' * 12


async def fill(client: Client) -> dict[str, str]:
    """Returns a few ids to look up: a queued one near the front, a dead one, a result."""
    js = client._js
    chunk = 5_000
    for start in range(0, N_QUEUED, chunk):
        calls = [(i,) for i in range(start, min(start + chunk, N_QUEUED))]
        await client.enqueue_many("bench.tasks:noop", calls, queue="default")
    ids = {"queued": "", "dead": "", "result": ""}
    # Dead letters and results written as workers write them, pipelined.
    pending = []
    for i in range(N_DEAD):
        job_id = uuid.uuid4().hex
        queue = "default" if i % 2 else "mail"
        payload = json.dumps(
            {
                "v": 1,
                "id": job_id,
                "task": "bench.tasks:noop",
                "queue": queue,
                "args": [],
                "kwargs": {"user_id": i % 1000},
                "enqueued_at": 0.0,
            }
        )
        entry = DeadLetter(
            id=job_id, queue=queue, reason="failed",
            error=ErrorInfo("ValueError" if i % 3 else "KeyError", f"bad {i}", TRACEBACK),
            subject=f"naqd.jobs.{queue}", payload=payload.encode(),
            headers={HDR_MSG_ID: job_id}, attempts=3, task="bench.tasks:noop",
        )  # fmt: skip
        pending.append(
            await js.publish_async(dlq_subject(queue, job_id), encode_dead_letter(entry))
        )
        ids["dead"] = ids["dead"] or job_id
    for i in range(N_RESULTS):
        job_id = uuid.uuid4().hex
        now = time.time()
        rec = ResultRecord(
            id=job_id, status="succeeded" if i % 10 else "failed", result=i,
            task="bench.tasks:noop", queue="default", enqueued_at=now, started_at=now,
            finished_at=now, worker="bench:1", attempts=1,
        )  # fmt: skip
        pending.append(await js.publish_async(result_subject(job_id), encode_result(rec)))
        ids["result"] = job_id
    await asyncio.gather(*pending)
    first = await client.explorer.list_jobs(state="queued", queue="default", limit=1)
    ids["queued"] = first.items[0].id
    last = (await client.enqueue("bench.tasks:noop", queue="default")).id
    ids["queued_last"] = last
    return ids


async def timed(fn: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    samples = []
    for _ in range(RUNS):
        t = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t) * 1000)
    return {"median_ms": round(statistics.median(samples), 1), "max_ms": round(max(samples), 1)}


async def measure(url: str) -> dict[str, Any]:
    async with Client(url) as client:
        await ensure_resources(client._js, Config(nats=NatsConfig(servers=(url,))))
        t = time.perf_counter()
        ids = await fill(client)
        filled = time.perf_counter() - t
        ex = client.explorer
        t = time.perf_counter()
        await ex.start(wait=120)  # the id index, as a long-lived console keeps it
        assert ex.index is not None
        indexed = time.perf_counter() - t
        out: dict[str, Any] = {
            "index_build_s": round(indexed, 1), "index_entries": len(ex.index.ids),
            "queued": N_QUEUED, "dead_letters": N_DEAD, "results": N_RESULTS,
            "fill_s": round(filled, 1),
        }  # fmt: skip
        reads: dict[str, Callable[[], Awaitable[Any]]] = {
            "overview": ex.overview,
            "dead letters, page of 50": lambda: ex.dead_letters(limit=50),
            "dead letters of a queue, page of 50": lambda: ex.dead_letters(queue="mail", limit=50),
            "dead letters by error type, page of 50": lambda: ex.dead_letters(
                error_type="KeyError", limit=50
            ),
            "job detail (dead)": lambda: ex.job_detail(ids["dead"]),
            "job detail (finished)": lambda: ex.job_detail(ids["result"]),
            "job detail (queued, front)": lambda: ex.job_detail(ids["queued"]),
            "job detail (queued, back)": lambda: ex.job_detail(ids["queued_last"]),
            "id search (exact)": lambda: ex.find_jobs(ids["dead"]),
            "id search (8-char prefix)": lambda: ex.find_jobs(ids["dead"][:8]),
            "id search (queued, 8-char prefix)": lambda: ex.find_jobs(ids["queued_last"][:8]),
            "queued jobs, page of 50": lambda: ex.list_jobs(state="queued", queue="default"),
            "finished jobs, page of 50": lambda: ex.list_jobs(state="succeeded"),
        }
        out["reads"] = {name: await timed(fn) for name, fn in reads.items()}

        t = time.perf_counter()
        first_hit = None
        last = None
        async for event in ex.search_args("user_id=999"):
            if event.job and first_hit is None:
                first_hit = time.perf_counter() - t
            last = event
        total = time.perf_counter() - t
        assert last is not None
        out["argument search"] = {
            "scanned": last.scanned, "hits": last.hits,
            "first_hit_ms": round((first_hit or 0) * 1000, 1), "total_s": round(total, 2),
            "per_s": round(last.scanned / total) if total else 0,
        }  # fmt: skip
    return out


def report(out: dict[str, Any]) -> None:
    print(f"\nconsole reads: {out['queued']} queued, {out['dead_letters']} dead letters, "
          f"{out['results']} results (filled in {out['fill_s']} s; id index of "
          f"{out['index_entries']} built in {out['index_build_s']} s)")  # fmt: skip
    for name, r in out["reads"].items():
        flag = "" if r["median_ms"] <= TARGET_MS else "  over target"
        print(f"  {name:<42} {r['median_ms']:>8.1f} ms  (max {r['max_ms']:.1f}){flag}")
    s = out["argument search"]
    print(f"  {'argument search':<42} first hit {s['first_hit_ms']} ms, {s['scanned']} "
          f"messages in {s['total_s']} s ({s['per_s']}/s), {s['hits']} hits")  # fmt: skip


def section(url: str, tmp: Path, results: dict[str, Any]) -> None:
    """`make bench`'s `console` section: its own server, so the fill leaves nothing behind."""
    from tests.natsserver import NatsServer

    server = NatsServer(tmp / "console-nats").start()
    try:
        results["console"] = asyncio.run(measure(server.url))
    finally:
        server.stop()
    report(results["console"])


def main() -> None:
    from tests.natsserver import NatsServer

    with tempfile.TemporaryDirectory(prefix="naqd-bench-console-") as tmp:
        server = NatsServer(Path(tmp) / "nats").start()
        try:
            out = asyncio.run(measure(server.url))
        finally:
            server.stop()
    report(out)
    if "--json" in sys.argv:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
